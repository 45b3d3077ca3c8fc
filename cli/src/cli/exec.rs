//! Running a user's command once per message or request (`shmq recv --exec`, `shmq serve
//! --exec`): what both do the same way.

use std::io::Write;
use std::process::Child;
use std::thread::JoinHandle;

/// Writes `bytes` and a newline to the stdin of `child` (piped) from a thread of its own, then
/// closes it: a command need not read its stdin, so the write may fail (EPIPE) or wait until it
/// exits, and neither may stop the caller from reading the command's output. Join the handle
/// after waiting for the child.
pub fn feed_line(child: &mut Child, bytes: &[u8]) -> JoinHandle<()> {
    let mut stdin = child.stdin.take().expect("stdin piped");
    let mut input = Vec::with_capacity(bytes.len() + 1);
    input.extend_from_slice(bytes);
    input.push(b'\n');
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    })
}
