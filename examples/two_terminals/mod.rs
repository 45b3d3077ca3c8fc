//! How every small example runs: `cargo run --example NAME -- ROLE` in two terminals (one
//! role each), or with no role both at once, each in a process of its own (what CI does).
//! Segments go to `$SHMQ_DIR`, else /dev/shm; the receiving side removes them at the end.

use std::process::Command;

/// Runs `roles[0]` (the receiving side) and `roles[1]` as two processes of this example, or
/// the one role named on the command line through `run`.
pub fn main(roles: [&str; 2], run: fn(&str) -> Result<(), shmq::Error>) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(role) = std::env::args().nth(1) {
        if !roles.contains(&role.as_str()) {
            return Err(format!("unknown role {role:?}; use {} or {}", roles[0], roles[1]).into());
        }
        return Ok(run(&role)?);
    }
    let exe = std::env::current_exe()?;
    let receiver = Command::new(&exe).arg(roles[0]).spawn()?;
    let sender = Command::new(&exe).arg(roles[1]).status()?;
    let received = receiver.wait_with_output()?;
    if !sender.success() || !received.status.success() {
        return Err(format!("{}: {sender}, {}: {}", roles[1], roles[0], received.status).into());
    }
    Ok(())
}
