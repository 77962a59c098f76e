//! Phone numbers: parsed once at the boundary, stored and compared as E.164.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

use phonenumber::{Mode, country};

/// Longest raw input we hand to the parser; real numbers with formatting are far shorter.
const MAX_RAW_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is too long")]
    TooLong,
    #[error("phone number may contain only digits, spaces, '+', '-', '.', '/' and parentheses")]
    InvalidCharacters,
    #[error("not a valid phone number for region {region}")]
    Invalid { region: String },
    #[error("unknown region {0:?}: use a two-letter ISO country code such as US or IN")]
    UnknownRegion(String),
}

/// A validated phone number in E.164 form (`+917471180076`).
///
/// `Debug` masks the middle digits: numbers are personal data and must not reach logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// A validated region code (ISO 3166 alpha-2) used to read national-format numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        let code = raw.trim().to_ascii_uppercase();
        country::Id::from_str(&code)
            .map(Region)
            .map_err(|_| PhoneError::UnknownRegion(raw.to_owned()))
    }

    /// The two-letter code, e.g. `IN`.
    pub fn code(&self) -> &str {
        self.0.as_ref()
    }
}

impl PhoneNumber {
    /// Parses `raw` in any common format; national numbers are read in `region`.
    /// Never panics, even on hostile input.
    pub fn parse(raw: &str, region: Region) -> Result<Self, PhoneError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        if trimmed.len() > MAX_RAW_LEN {
            return Err(PhoneError::TooLong);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '/' | '(' | ')' | ' '))
        {
            return Err(PhoneError::InvalidCharacters);
        }
        let digits = trimmed.chars().filter(char::is_ascii_digit).count();
        if digits < 3 {
            return Err(PhoneError::Invalid {
                region: region.0.as_ref().to_owned(),
            });
        }
        if digits > 17 {
            return Err(PhoneError::TooLong);
        }
        let invalid = || PhoneError::Invalid {
            region: region.0.as_ref().to_owned(),
        };
        if trimmed[1..].contains('+') {
            return Err(invalid());
        }
        let all_digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        // An international number (`+CC...`, or the region's own dialling-out prefix such
        // as `00` or `011`) is read without the default region: reading it in the region
        // let the region's trunk prefix eat the number's own digits (`+4915...` in a US
        // tenant became `+495...`), so the wrong person would be dialled.
        let international = if trimmed.starts_with('+') {
            Some(all_digits.clone())
        } else {
            strip_idd(region, &all_digits).map(str::to_owned)
        };
        // The crate has panicked on crafted input in the past; contain it here.
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            let number = match &international {
                Some(digits) => phonenumber::parse(None, format!("+{digits}")).ok()?,
                None => phonenumber::parse(Some(region.0), trimmed).ok()?,
            };
            if !phonenumber::is_valid(&number) {
                return None;
            }
            Some((
                number.format().mode(Mode::E164).to_string(),
                number.code().value().to_string(),
            ))
        }))
        .map_err(|_| invalid())?
        .ok_or_else(invalid)?;
        let (parsed, country_code) = parsed;
        if let Some(digits) = &international
            && !keeps_digits(&parsed, &country_code, digits)
        {
            return Err(invalid());
        }
        Ok(PhoneNumber(parsed))
    }

    /// Accepts an already-normalised E.164 string (from the database) without re-validating.
    pub fn from_e164_unchecked(e164: String) -> Self {
        PhoneNumber(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// The digits after `region`'s international dialling prefix (`011` in the US, `00` in
/// most of Europe and India, `810` in Russia), if `digits` start with it.
fn strip_idd(region: Region, digits: &str) -> Option<&str> {
    let meta = phonenumber::metadata::DATABASE.by_id(region.0.as_ref())?;
    let found = meta.international_prefix()?.find(digits)?;
    let rest = &digits[found.end()..];
    // A country code never starts with 0, so `0...` after the prefix is a national number.
    (found.start() == 0 && !rest.is_empty() && !rest.starts_with('0')).then_some(rest)
}

/// An international input must come out with exactly the digits it went in with, except
/// a single trunk `0` written after the country code (`+44 (0)20 ...`).
fn keeps_digits(e164: &str, country_code: &str, input: &str) -> bool {
    let out = e164.trim_start_matches('+');
    if out == input {
        return true;
    }
    let (Some(national_in), Some(national_out)) = (
        input.strip_prefix(country_code),
        out.strip_prefix(country_code),
    ) else {
        return false;
    };
    national_in.strip_prefix('0') == Some(national_out)
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", mask(&self.0))
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `+917471180076` -> `+91********76`: enough to tell numbers apart in a log, not to dial them.
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 5 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn india() -> Region {
        Region::parse("IN").unwrap()
    }

    #[test]
    fn indian_formats_are_one_number() {
        for raw in [
            "7471180076",
            "07471180076",
            "+91 74711 80076",
            "+917471180076",
            " (+91) 74711-80076 ",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw, india()).unwrap().as_str(),
                "+917471180076",
                "{raw}"
            );
        }
    }

    #[test]
    fn foreign_numbers_keep_their_country() {
        let n = PhoneNumber::parse("+1 650 253 0000", india()).unwrap();
        assert_eq!(n.as_str(), "+16502530000");
        let us = Region::parse("us").unwrap();
        assert_eq!(
            PhoneNumber::parse("(650) 253-0000", us).unwrap().as_str(),
            "+16502530000"
        );
    }

    #[test]
    fn garbage_is_rejected_without_panicking() {
        let region = india();
        let long = "9".repeat(40);
        for raw in [
            "",
            "   ",
            "abc",
            "74711800ab",
            "📞📞📞",
            "+",
            "++++",
            "12",
            long.as_str(),
            "+999 1234567",
            "0000000000",
        ] {
            assert!(
                PhoneNumber::parse(raw, region).is_err(),
                "{raw:?} should be invalid"
            );
        }
    }

    #[test]
    fn debug_masks_the_number() {
        let n = PhoneNumber::parse("+917471180076", india()).unwrap();
        let shown = format!("{n:?}");
        assert!(!shown.contains("7471180076"), "{shown}");
        assert_eq!(shown, "PhoneNumber(+91********76)");
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!(Region::parse("XX").is_err());
        assert!(Region::parse("").is_err());
    }
}
