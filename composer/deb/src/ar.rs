//! The `ar` container of a `.deb`, read as deb(5) defines it: the `!<arch>\n` magic, then
//! members with a 60-byte header (name, date, owner, group, mode, size in decimal, "`\n"), each
//! padded to an even length. A `.deb` needs no symbol table and no long names, so neither is
//! read: a member whose name asks for one is an error. Written here rather than taken from the
//! `ar` crate, whose GNU name-table handling panics on a crafted index (found by fuzzing,
//! `tests/fuzz`); this reader has one job and returns an error for every malformed input.

use std::io::{self, Read};

const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER: usize = 60;

/// A streaming reader of a `.deb`'s members, in order.
pub struct Archive<R> {
    reader: R,
    started: bool,
    /// Bytes of the current member not yet read, and whether a padding byte follows it.
    left: u64,
    pad: bool,
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

impl<R: Read> Archive<R> {
    pub fn new(reader: R) -> Archive<R> {
        Archive { reader, started: false, left: 0, pad: false }
    }

    /// The next member's name (trailing `/` removed) and size, positioned at its data; `None`
    /// at the end of the archive. What was left of the previous member is skipped.
    pub fn next_member(&mut self) -> io::Result<Option<(String, u64)>> {
        if !self.started {
            let mut magic = [0u8; 8];
            // Only a short file is the archive's fault; another error (the store's verdict on a
            // damaged object, say) goes up as it is.
            self.reader.read_exact(&mut magic).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid(format!("no ar magic: {e}")),
                _ => e,
            })?;
            if &magic != MAGIC {
                return Err(invalid("not an ar archive (no `!<arch>` magic)".into()));
            }
            self.started = true;
        }
        let skip = self.left + u64::from(self.pad);
        let skipped = io::copy(&mut (&mut self.reader).take(skip), &mut io::sink())?;
        if skipped != skip {
            return Err(invalid("the archive ends inside a member".into()));
        }
        self.left = 0;
        self.pad = false;
        let mut header = [0u8; HEADER];
        let mut filled = 0;
        while filled < HEADER {
            match self.reader.read(&mut header[filled..])? {
                0 if filled == 0 => return Ok(None),
                0 => return Err(invalid("the archive ends inside a member header".into())),
                n => filled += n,
            }
        }
        if &header[58..60] != b"`\n" {
            return Err(invalid("a member header does not end in \"`\\n\"".into()));
        }
        let name = std::str::from_utf8(&header[..16])
            .map_err(|_| invalid("a member name is not text".into()))?
            .trim_end_matches(' ')
            .trim_end_matches('/')
            .to_string();
        if name.is_empty() || name.starts_with('/') || name.starts_with("#1/") {
            return Err(invalid(format!("member name `{}` is not a plain name", name.escape_debug())));
        }
        let size_text =
            std::str::from_utf8(&header[48..58]).map_err(|_| invalid("a member size is not text".into()))?;
        let size: u64 = size_text
            .trim_end_matches(' ')
            .parse()
            .map_err(|_| invalid(format!("member `{name}` has size `{}`", size_text.escape_debug())))?;
        self.left = size;
        self.pad = size % 2 == 1;
        Ok(Some((name, size)))
    }
}

/// Reads the current member's data; returns 0 at its end.
impl<R: Read> Read for Archive<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid("the archive ends inside a member".into()));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, 100644, data.len()).into_bytes();
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
        out
    }

    #[test]
    fn members_are_read_in_order_with_their_padding() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(member("debian-binary", b"2.0\n"));
        bytes.extend(member("control.tar/", b"odd"));
        bytes.extend(member("data.tar", b"data"));
        let mut archive = Archive::new(bytes.as_slice());
        assert_eq!(archive.next_member().unwrap(), Some(("debian-binary".into(), 4)));
        assert_eq!(archive.next_member().unwrap(), Some(("control.tar".into(), 3)), "skips unread data");
        let mut data = String::new();
        archive.read_to_string(&mut data).unwrap();
        assert_eq!(data, "odd");
        assert_eq!(archive.next_member().unwrap(), Some(("data.tar".into(), 4)));
        assert_eq!(archive.next_member().unwrap(), None);
    }

    #[test]
    fn malformed_archives_are_errors_not_panics() {
        let long_name = [MAGIC.to_vec(), member("/0", b"x")].concat();
        let huge = [MAGIC.to_vec(), member("data.tar", b"")[..48].to_vec(), b"99999999`\n".to_vec()].concat();
        let cut = [MAGIC.to_vec(), member("data.tar", b"data")[..62].to_vec()].concat();
        for bytes in [b"not ar".to_vec(), long_name, huge, cut] {
            let mut archive = Archive::new(bytes.as_slice());
            let result = archive.next_member().and_then(|_| {
                let mut sink = Vec::new();
                archive.read_to_end(&mut sink).map(|_| ())?;
                archive.next_member().map(|_| ())
            });
            assert!(result.is_err(), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }
}
