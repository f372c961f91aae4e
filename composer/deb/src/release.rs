//! `InRelease`: an OpenPGP cleartext-signed `Release` file. It is verified against a keyring
//! before a single field of it is believed; the verified text then lists the SHA-256 and size of
//! every index file of the suite.

use std::collections::BTreeMap;
use std::path::Path;

use composer_store::Sha256;
use composer_store::userfile::{self, Policy};
use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};

use crate::{DebError, IndexProblem, SignatureProblem};

/// The fields of a verified Release file that composer uses.
#[derive(Debug, Clone)]
pub struct Release {
    pub suite: String,
    pub codename: String,
    pub date: String,
    /// `Valid-Until`, as written (empty when the archive sets none).
    pub valid_until: String,
    pub architectures: Vec<String>,
    pub components: Vec<String>,
    /// Index path (relative to the suite directory) → (sha256, size).
    pub files: BTreeMap<String, (Sha256, u64)>,
    /// The signed text, as it was verified.
    pub text: String,
}

/// Loads every public key of a keyring file (binary `.gpg` or ASCII-armored `.asc`), read under
/// `policy` (confined when the recipe names it).
pub fn load_keyring(path: &Path, policy: &Policy<'_>) -> Result<Vec<SignedPublicKey>, DebError> {
    let bytes = userfile::read(path, policy)
        .map_err(|source| DebError::Keyring { path: path.to_path_buf(), source: source.into() })?;
    let (keys, _) = SignedPublicKey::from_reader_many(std::io::Cursor::new(bytes))
        // The parser's error quotes the bytes it choked on (kilobytes of them, for a bad armor
        // header): the file may be a secret named by mistake, so only what it is not is said.
        .map_err(|_| DebError::Keyring {
            path: path.to_path_buf(),
            source: "it is not an OpenPGP keyring (binary, or ASCII-armored); its bytes are not shown".into(),
        })?;
    let keys: Vec<_> = keys.filter_map(Result::ok).collect();
    if keys.is_empty() {
        return Err(DebError::Keyring { path: path.to_path_buf(), source: "it holds no OpenPGP public key".into() });
    }
    Ok(keys)
}

/// Verifies an `InRelease` document against `keys` and parses it. `what` names it in errors.
pub fn verify_inrelease(data: &[u8], keys: &[SignedPublicKey], what: &str) -> Result<Release, DebError> {
    let bad = |reason: SignatureProblem| DebError::BadSignature { what: what.to_string(), reason };
    let text = std::str::from_utf8(data).map_err(|_| bad(SignatureProblem::NotText))?;
    let (message, _) =
        CleartextSignedMessage::from_string(text).map_err(|e| bad(SignatureProblem::NotSigned(Box::new(e))))?;
    let verified = keys.iter().any(|key| {
        message.verify(&key.primary_key).is_ok()
            || key.public_subkeys.iter().any(|sub| message.verify(&sub.key).is_ok())
    });
    if !verified {
        return Err(bad(SignatureProblem::NoneVerifies { keys: keys.len() }));
    }
    parse_release(&message.signed_text().replace("\r\n", "\n"), what)
}

/// Verifies a `Release` file against its detached signature (`Release.gpg`, armored or binary),
/// for archives that publish no `InRelease`, as apt accepts them.
pub fn verify_detached(
    release: &[u8],
    signature: &[u8],
    keys: &[SignedPublicKey],
    what: &str,
) -> Result<Release, DebError> {
    use pgp::composed::StandaloneSignature;
    let bad = |reason: SignatureProblem| DebError::BadSignature { what: what.to_string(), reason };
    let signature = match StandaloneSignature::from_armor_single(std::io::Cursor::new(signature)) {
        Ok((signature, _)) => signature,
        Err(_) => StandaloneSignature::from_bytes(std::io::Cursor::new(signature))
            .map_err(|e| bad(SignatureProblem::NotASignature(Box::new(e))))?,
    };
    let verified = keys.iter().any(|key| {
        signature.verify(&key.primary_key, release).is_ok()
            || key.public_subkeys.iter().any(|sub| signature.verify(&sub.key, release).is_ok())
    });
    if !verified {
        return Err(bad(SignatureProblem::NoneVerifies { keys: keys.len() }));
    }
    let text = std::str::from_utf8(release).map_err(|_| bad(SignatureProblem::NotText))?;
    parse_release(text, what)
}

/// How far ahead of the clock a Release's `Date` may be: clocks and time zones disagree by
/// hours, never by more than a day.
pub const MAX_CLOCK_SKEW: u64 = 86_400;

/// What apt checks of a verified Release beyond its signature: that it is the suite asked for
/// (a signed `oldstable` Release served under `stable` is a downgrade attack), that it was not
/// made in the future (a Release dated years ahead would outrank every honest one in the
/// downgrade check and pin an archive forever), and, unless the caller turned it off for a
/// snapshot mirror (`valid_until` false), that it has not expired (a replayed old Release would
/// freeze the archive at its vulnerable versions). `now` is seconds since the epoch, passed in
/// so that the check is a function of its arguments.
pub fn check_release(release: &Release, suite: &str, now: u64, valid_until: bool, what: &str) -> Result<(), DebError> {
    if release.suite != suite && release.codename != suite {
        return Err(DebError::WrongSuite {
            what: what.to_string(),
            asked: suite.to_string(),
            suite: release.suite.clone(),
            codename: release.codename.clone(),
        });
    }
    if let Some(date) = release_date(release, what)?
        && date > now.saturating_add(MAX_CLOCK_SKEW)
    {
        return Err(DebError::FutureDate { what: what.to_string(), date: release.date.clone() });
    }
    if valid_until && !release.valid_until.is_empty() {
        let until = parse_date(&release.valid_until).ok_or_else(|| DebError::Index {
            what: what.to_string(),
            reason: IndexProblem::NotADate { field: "Valid-Until", value: release.valid_until.clone() },
        })?;
        if now > until {
            return Err(DebError::Expired { what: what.to_string(), valid_until: release.valid_until.clone() });
        }
    }
    Ok(())
}

/// The Release's `Date` in seconds since the epoch; `None` when it has none (old archives),
/// an error when it has one that is not a date.
pub fn release_date(release: &Release, what: &str) -> Result<Option<u64>, DebError> {
    if release.date.trim().is_empty() {
        return Ok(None);
    }
    parse_date(&release.date).map(Some).ok_or_else(|| DebError::Index {
        what: what.to_string(),
        reason: IndexProblem::NotADate { field: "Date", value: release.date.clone() },
    })
}

/// An RFC 2822 date as Release files write it (`Sat, 01 Jun 2024 08:10:30 UTC`), in seconds
/// since the epoch. Zones: `UTC`, `GMT`, `Z` or a numeric offset.
pub fn parse_date(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.split_once(", ").map_or(text, |(_, rest)| rest);
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [day, month, year, time, zone] = parts[..] else { return None };
    let day: u64 = day.parse().ok()?;
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| *m == month)? as u64 + 1;
    let year: u64 = year.parse().ok()?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>());
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    let offset: i64 = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let hours: i64 = z[1..3].parse().ok()?;
            let minutes: i64 = z[3..5].parse().ok()?;
            let value = hours * 3600 + minutes * 60;
            if z.starts_with('-') { -value } else { value }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm), valid for every Gregorian date.
    let (y, mo) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = (days * 86_400 + h * 3600 + m * 60 + s) as i64 - offset;
    u64::try_from(seconds).ok()
}

pub fn parse_release(text: &str, what: &str) -> Result<Release, DebError> {
    let paragraph = crate::control::parse(text).into_iter().next().unwrap_or_default();
    let field = |name: &str| paragraph.get(name).unwrap_or("").to_string();
    let mut files = BTreeMap::new();
    for line in paragraph.get("SHA256").unwrap_or("").lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [sha, size, path] = parts[..] {
            let sha: Sha256 = sha
                .parse()
                .map_err(|e| DebError::Index { what: what.to_string(), reason: IndexProblem::BadChecksum(e) })?;
            let size = size.parse().map_err(|_| DebError::Index {
                what: what.to_string(),
                reason: IndexProblem::BadSize(size.to_string()),
            })?;
            files.insert(path.to_string(), (sha, size));
        }
    }
    if files.is_empty() {
        return Err(DebError::Index { what: what.to_string(), reason: IndexProblem::NoChecksums });
    }
    let words = |s: String| s.split_whitespace().map(str::to_string).collect();
    Ok(Release {
        suite: field("Suite"),
        codename: field("Codename"),
        date: field("Date"),
        valid_until: field("Valid-Until"),
        architectures: words(field("Architectures")),
        components: words(field("Components")),
        files,
        text: text.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_dates_parse_as_apt_reads_them() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_date("Sat, 01 Jun 2024 08:10:30 UTC"), Some(1_717_229_430));
        assert_eq!(parse_date("Sat, 01 Jun 2024 10:10:30 +0200"), Some(1_717_229_430));
        assert_eq!(parse_date("29 Feb 2028 00:00:00 GMT"), Some(1_835_395_200));
        assert_eq!(parse_date("Sat, 01 Jun 2024"), None);
        assert_eq!(parse_date("Sat, 41 Jun 2024 08:10:30 UTC"), None);
    }

    fn release(suite: &str, codename: &str, valid_until: &str) -> Release {
        Release {
            suite: suite.into(),
            codename: codename.into(),
            date: String::new(),
            valid_until: valid_until.into(),
            architectures: vec![],
            components: vec![],
            files: BTreeMap::new(),
            text: String::new(),
        }
    }

    #[test]
    fn a_release_must_be_the_suite_asked_for_and_unexpired() {
        let r = release("stable", "bookworm", "Sat, 01 Jun 2024 08:10:30 UTC");
        assert!(check_release(&r, "bookworm", 1_700_000_000, true, "x").is_ok());
        assert!(check_release(&r, "stable", 1_700_000_000, true, "x").is_ok());
        let err = check_release(&r, "trixie", 1_700_000_000, true, "x").unwrap_err();
        assert!(err.to_string().contains("`trixie`"), "{err}");
        let err = check_release(&r, "bookworm", 1_800_000_000, true, "x").unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(check_release(&r, "bookworm", 1_800_000_000, false, "x").is_ok(), "not checked for a snapshot mirror");
    }

    #[test]
    fn a_release_dated_more_than_a_day_ahead_of_the_clock_is_refused() {
        // Sat, 01 Jun 2024 08:10:30 UTC is 1_717_229_430.
        let mut r = release("stable", "bookworm", "");
        r.date = "Sat, 01 Jun 2024 08:10:30 UTC".into();
        let now = 1_717_229_430;
        assert!(check_release(&r, "stable", now, true, "x").is_ok());
        assert!(check_release(&r, "stable", now - MAX_CLOCK_SKEW, true, "x").is_ok(), "a day of skew is allowed");
        let err = check_release(&r, "stable", now - MAX_CLOCK_SKEW - 1, true, "x").unwrap_err();
        assert!(matches!(err, DebError::FutureDate { .. }), "{err}");
        assert!(err.to_string().contains("Sat, 01 Jun 2024 08:10:30 UTC"), "{err}");
        // Snapshot mirrors still may not be from the future.
        r.date = "Sat, 01 Jan 2050 00:00:00 UTC".into();
        assert!(matches!(check_release(&r, "stable", now, false, "x"), Err(DebError::FutureDate { .. })));
        // A Date that is not a date is an error; none at all is an old archive's way.
        r.date = "yesterday".into();
        assert!(matches!(check_release(&r, "stable", now, true, "x"), Err(DebError::Index { .. })));
        r.date = String::new();
        assert!(check_release(&r, "stable", now, true, "x").is_ok());
    }
}
