//! Payloads in and out of the command line: the messages `send` and `pub` read (stdin lines,
//! length-prefixed frames, or generated ones) and how `recv` and `sub` write them (text lines,
//! hex lines, or length-prefixed frames).
//!
//! A raw frame is the payload's length as a u32, little-endian, then the payload's bytes, with
//! nothing between frames: `recv --raw | send --raw` copies messages byte for byte, newlines,
//! NUL bytes and invalid UTF-8 included.

use std::io::{BufRead, Read, Write};

use super::door::count;
use super::{CliError, CliResult};

/// How `send` and `pub` get their messages.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source {
    /// `count` generated messages, padded to `size` (see [`generate`]).
    Generated { count: u64, size: Option<usize> },
    /// Each line of stdin, without its newline.
    Lines,
    /// Length-prefixed frames from stdin (`--raw`).
    Frames,
}

impl Source {
    /// The source the options of `send` or `pub` ask for.
    pub fn of(count: Option<u64>, size: Option<usize>, raw: bool) -> Source {
        match (count, raw) {
            (Some(count), _) => Source::Generated { count, size },
            (None, true) => Source::Frames,
            (None, false) => Source::Lines,
        }
    }

    /// What one message is called in messages: "line", "frame", "message".
    fn unit(self) -> &'static str {
        match self {
            Source::Generated { .. } => "message",
            Source::Lines => "line",
            Source::Frames => "frame",
        }
    }
}

/// Where messages go, for the error of a message that does not fit.
pub(super) struct Sink<'a> {
    /// "queue" or "topic".
    pub what: &'a str,
    /// The largest message it takes.
    pub max: usize,
    /// "sent" or "published".
    pub verb: &'a str,
}

/// Calls `f` with each message of `src` in order. A message over `sink.max` bytes stops it with
/// an error that says how many messages went out and how many did not (counted to the end of
/// stdin when stdin is a regular file; a pipe may never end, so it is not read further).
pub(super) fn each_message(src: Source, sink: &Sink<'_>, mut f: impl FnMut(&[u8]) -> CliResult) -> CliResult {
    let mut done: u64 = 0;
    let too_large = |done: u64, len: usize, rest: Option<u64>| -> CliError {
        let unit = src.unit();
        let k = done + 1;
        let went = format!("{} {}", sink.verb, count(done, unit));
        let left = match rest {
            Some(n) => format!("{went}, {n} not {}", sink.verb),
            None => format!("{went}; {unit} {k} and the rest of stdin were not {}", sink.verb),
        };
        CliError::msg(format!(
            "{unit} {k} is {}, over the {}'s maximum of {}; {left}; split it, or use a {} created with a larger --max-msg",
            count(len as u64, "byte"),
            sink.what,
            count(sink.max as u64, "byte"),
            sink.what
        ))
    };
    match src {
        Source::Generated { count: n, size } => {
            let mut buf = Vec::with_capacity(size.unwrap_or(20));
            for i in 0..n {
                generate(&mut buf, i, size)?;
                if buf.len() > sink.max {
                    return Err(too_large(done, buf.len(), Some(n - i)));
                }
                f(&buf)?;
                done += 1;
            }
            Ok(())
        }
        Source::Lines | Source::Frames => {
            let counts_rest = stdin_is_file();
            let mut stdin = std::io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                match next_input(src, &mut stdin, &mut buf, sink.max, done + 1)? {
                    Input::End => return Ok(()),
                    Input::Message => {
                        f(&buf)?;
                        done += 1;
                    }
                    Input::TooLarge(len) => {
                        let rest = if counts_rest {
                            let mut n = 1;
                            while !matches!(next_input(src, &mut stdin, &mut buf, 0, done + 1 + n)?, Input::End) {
                                n += 1;
                            }
                            Some(n)
                        } else {
                            None
                        };
                        return Err(too_large(done, len, rest));
                    }
                }
            }
        }
    }
}

/// What [`next_input`] read.
enum Input {
    /// The next message is in the buffer.
    Message,
    /// The next message has this many bytes, more than the maximum; it was skipped.
    TooLarge(usize),
    /// Stdin ended.
    End,
}

/// Reads message number `k` (from 1) of stdin into `buf`: a line (without its newline) or a
/// raw frame. A frame over `max` bytes is skipped without being kept in memory.
fn next_input(src: Source, stdin: &mut impl BufRead, buf: &mut Vec<u8>, max: usize, k: u64) -> CliResult<Input> {
    let read_err = |e: std::io::Error| CliError::msg(format!("read stdin: {e}"));
    buf.clear();
    if let Source::Frames = src {
        let mut len = [0u8; 4];
        let got = read_full(stdin, &mut len).map_err(read_err)?;
        if got == 0 {
            return Ok(Input::End);
        }
        if got < 4 {
            return Err(CliError::msg(format!(
                "stdin ended inside the length of frame {k} ({got} of 4 bytes); --raw reads frames of a \
                 u32 little-endian length and that many bytes"
            )));
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            let skipped = std::io::copy(&mut stdin.take(len as u64), &mut std::io::sink()).map_err(read_err)?;
            if skipped < len as u64 {
                return Err(short_frame(k, skipped, len));
            }
            return Ok(Input::TooLarge(len));
        }
        buf.resize(len, 0);
        let got = read_full(stdin, buf).map_err(read_err)?;
        if got < len {
            return Err(short_frame(k, got as u64, len));
        }
        return Ok(Input::Message);
    }
    let n = stdin.read_until(b'\n', buf).map_err(read_err)?;
    if n == 0 {
        return Ok(Input::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    }
    Ok(if buf.len() > max { Input::TooLarge(buf.len()) } else { Input::Message })
}

fn short_frame(k: u64, got: u64, len: usize) -> CliError {
    CliError::msg(format!(
        "stdin ended inside frame {k} ({got} of its {} came); --raw reads frames of a u32 \
         little-endian length and that many bytes",
        count(len as u64, "byte")
    ))
}

/// Reads until `buf` is full or the input ends; returns how many bytes came.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether stdin is a regular file (which ends, so it can be read to the end to count).
fn stdin_is_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|m| m.is_file())
}

/// Checks, before anything is opened, that `--size` holds every sequence number of `--count`.
pub(super) fn check_generated(count: Option<u64>, size: Option<usize>) -> CliResult {
    if let (Some(n), Some(size)) = (count, size) {
        // The first number that does not fit in `size` digits, 10^size, if it is generated.
        if let Some(first) = u32::try_from(size).ok().and_then(|s| 10u64.checked_pow(s)).filter(|&f| f < n) {
            generate(&mut Vec::new(), first, Some(size))?;
        }
    }
    Ok(())
}

/// Message `i` of `send --count`: the decimal number, padded with '.' to `size` bytes.
pub(super) fn generate(buf: &mut Vec<u8>, i: u64, size: Option<usize>) -> CliResult {
    buf.clear();
    write!(buf, "{i}").expect("writing to a Vec cannot fail");
    if let Some(size) = size {
        if buf.len() > size {
            return Err(CliError::msg(format!(
                "--size {size} is too small to hold the sequence number {i} ({})",
                count(buf.len() as u64, "byte")
            )));
        }
        buf.resize(size, b'.');
    }
    Ok(())
}

/// How `recv` and `sub` write each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    /// One line: the payload as UTF-8, invalid bytes replaced (and `kind<TAB>` first).
    Text { show_kind: bool },
    /// One line: the payload in lowercase hex (and `kind<TAB>` first).
    Hex { show_kind: bool },
    /// A raw frame: u32 little-endian length, then the payload.
    Raw,
}

impl Format {
    /// The format the options of `recv` or `sub` ask for (clap keeps --raw from the others).
    pub fn of(raw: bool, hex: bool, show_kind: bool) -> Format {
        if raw {
            Format::Raw
        } else if hex {
            Format::Hex { show_kind }
        } else {
            Format::Text { show_kind }
        }
    }

    /// Writes one message (not flushed).
    pub fn write(self, out: &mut impl Write, kind: u32, payload: &[u8]) -> std::io::Result<()> {
        match self {
            Format::Text { show_kind } | Format::Hex { show_kind } if show_kind => write!(out, "{kind}\t")?,
            _ => {}
        }
        match self {
            Format::Text { .. } => {
                out.write_all(String::from_utf8_lossy(payload).as_bytes())?;
                out.write_all(b"\n")
            }
            Format::Hex { .. } => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                let mut line = Vec::with_capacity(payload.len() * 2 + 1);
                for b in payload {
                    line.push(DIGITS[usize::from(b >> 4)]);
                    line.push(DIGITS[usize::from(b & 15)]);
                }
                line.push(b'\n');
                out.write_all(&line)
            }
            Format::Raw => {
                let len = u32::try_from(payload.len()).expect("a message is at most 64 MiB");
                out.write_all(&len.to_le_bytes())?;
                out.write_all(payload)
            }
        }
    }
}
