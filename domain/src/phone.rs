//! Phone numbers: parsed once at the boundary, stored and compared as E.164.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::Mutex;

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
        // The same numbers come back again and again (each status report of a call, each
        // page of a sync), and a parse costs ~100,000 instructions of regular expressions.
        let key = (region.0, trimmed.to_owned());
        if let Some(known) = PARSED.get(&key) {
            return known.map(PhoneNumber).ok_or_else(invalid);
        }
        let parsed = Self::read(trimmed, region);
        PARSED.put(key, parsed.clone());
        parsed.map(PhoneNumber).ok_or_else(invalid)
    }

    /// The E.164 form of `trimmed` (checked for characters and length), if it is a valid
    /// number when read in `region`.
    fn read(trimmed: &str, region: Region) -> Option<String> {
        // `+` only leads the number (after an opening parenthesis at most: `(+91) ...`).
        let lead = trimmed.trim_start_matches(['(', ' ']);
        let plus = lead.starts_with('+');
        if lead[usize::from(plus)..].contains('+') {
            return None;
        }
        let all_digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        // An international number (`+CC...`, or the region's own dialling-out prefix such
        // as `00` or `011`) is read without the default region: reading it in the region
        // let the region's trunk prefix eat the number's own digits (`+4915...` in a US
        // tenant became `+495...`), so the wrong person would be dialled.
        let international = if plus {
            Some(all_digits.clone())
        } else {
            strip_idd(region, &all_digits).map(str::to_owned)
        };
        match &international {
            Some(digits) => {
                // The crate strips the number's own trunk prefix even where it is part of
                // the number (Russia's 8: `+7 812 ...` is St Petersburg, not `+7 12 ...`):
                // when that loses digits, read the digits literally.
                parse_e164(None, digits)
                    .filter(|(e164, cc)| keeps_digits(e164, cc, digits))
                    .map(|(e164, _)| e164)
                    .or_else(|| literal(digits))
            }
            None => parse_national(trimmed, region).or_else(|| {
                // A national number written without its trunk prefix whose first digits
                // the crate mistook for one (`(812) 123-45-67` in Russia) or for the
                // country code (`91234 56789` in India).
                let meta = phonenumber::metadata::DATABASE.by_id(region.0.as_ref())?;
                let cc = meta.country_code();
                literal(&format!("{cc}{all_digits}")).or_else(|| {
                    let trunk = meta.national_prefix()?;
                    literal(&format!("{cc}{}", all_digits.strip_prefix(trunk)?))
                })
            }),
        }
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

/// Outcomes of recent parses by (region, trimmed input): the E.164 form, or `None` for
/// an invalid number. Inputs are at most [`MAX_RAW_LEN`] bytes, so an entry holds at most
/// ~200 bytes and the whole cache ~1 MiB.
static PARSED: ParseCache = ParseCache(std::sync::LazyLock::new(|| {
    Mutex::new(lru::LruCache::new(
        std::num::NonZeroUsize::new(PARSED_ENTRIES).expect("non-zero"),
    ))
}));
const PARSED_ENTRIES: usize = 4096;

type ParseKey = (country::Id, String);

struct ParseCache(std::sync::LazyLock<Mutex<lru::LruCache<ParseKey, Option<String>>>>);

impl ParseCache {
    fn get(&self, key: &ParseKey) -> Option<Option<String>> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: ParseKey, parsed: Option<String>) {
        if let Ok(mut cache) = self.0.lock() {
            cache.put(key, parsed);
        }
    }
}

/// A valid parse as (E.164, country code), the crate's panics contained (it has panicked
/// on crafted input in the past).
fn checked(parse: impl FnOnce() -> Option<phonenumber::PhoneNumber>) -> Option<(String, String)> {
    catch_unwind(AssertUnwindSafe(|| {
        let number = parse()?;
        phonenumber::is_valid(&number).then(|| {
            (
                number.format().mode(Mode::E164).to_string(),
                number.code().value().to_string(),
            )
        })
    }))
    .ok()
    .flatten()
}

fn parse_e164(with: Option<Region>, digits: &str) -> Option<(String, String)> {
    checked(|| phonenumber::parse(with.map(|r| r.0), format!("+{digits}")).ok())
}

fn parse_national(raw: &str, region: Region) -> Option<String> {
    checked(|| phonenumber::parse(Some(region.0), raw).ok()).map(|(e164, _)| e164)
}

/// `+digits` read exactly as written: parsed against a region without a trunk prefix (so
/// nothing is stripped), valid for the number's own country, and every digit kept.
fn literal(digits: &str) -> Option<String> {
    let (e164, _) = parse_e164(Some(Region(country::Id::IT)), digits)?;
    (e164.trim_start_matches('+') == digits).then_some(e164)
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

/// An E.164 number in the parts CRMs store it as: the calling code (`+91`), the national
/// number without it (`9812345678`) and the country (`IN`, when the code names one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    pub calling_code: String,
    pub national: String,
    pub country: Option<String>,
}

impl PhoneNumber {
    pub fn parts(&self) -> Option<Parts> {
        let digits = self.0.strip_prefix('+')?;
        let (code, country) = catch_unwind(AssertUnwindSafe(|| {
            let n = phonenumber::parse(None, &self.0).ok()?;
            let country = n.country().id().map(|id| id.as_ref().to_owned());
            Some((n.code().value().to_string(), country))
        }))
        .ok()
        .flatten()?;
        let national = digits.strip_prefix(&code)?;
        Some(Parts {
            calling_code: format!("+{code}"),
            national: national.to_owned(),
            country,
        })
    }
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
    #[test]
    fn parts_split_a_number_the_way_crms_store_it() {
        let n = super::PhoneNumber::from_e164_unchecked("+919812345678".into());
        let p = n.parts().unwrap();
        assert_eq!(p.calling_code, "+91");
        assert_eq!(p.national, "9812345678");
        assert_eq!(p.country.as_deref(), Some("IN"));
        let us = super::PhoneNumber::from_e164_unchecked("+14155550123".into());
        assert_eq!(us.parts().unwrap().calling_code, "+1");
    }

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
    fn remembered_parses_answer_as_fresh_ones() {
        let us = Region::parse("US").unwrap();
        let inputs = [
            "7471180076",
            "+91 74711 80076",
            "(650) 253-0000",
            "12",
            "+1 650 253 0000",
            "011 44 20 7946 0958",
            "000000000",
        ];
        for region in [india(), us] {
            for raw in inputs {
                // Uncached, then twice through the cache (a miss that fills it, a hit).
                let fresh = PhoneNumber::read(raw, region);
                let first = PhoneNumber::parse(raw, region)
                    .ok()
                    .map(PhoneNumber::into_string);
                let again = PhoneNumber::parse(raw, region)
                    .ok()
                    .map(PhoneNumber::into_string);
                assert_eq!(first, again, "{raw} in {}", region.code());
                if raw.chars().filter(char::is_ascii_digit).count() >= 3 {
                    assert_eq!(first, fresh, "{raw} in {}", region.code());
                }
            }
        }
        // One input reads differently per region: the cache keeps them apart.
        assert_eq!(
            PhoneNumber::parse("7471180076", india()).unwrap().as_str(),
            "+917471180076"
        );
        assert!(PhoneNumber::parse("7471180076", us).is_err());
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

    // Generated with libphonenumber's Python port at the crate's metadata release
    // (9.0.33): 197 inputs across 15 countries and 15 tenant regions.
    /// (raw input as typed, tenant region, expected E.164 — None = must be refused).
    /// Main table: tenants US, GB, IN, DE, RU; numbers from 15 countries.
    /// For every `+` / IDD input the expected digits equal the input's digits after the
    /// (IDD and) country code, except the `(0)` group, where libphonenumber drops the trunk 0.
    #[rustfmt::skip]
    const PHONE_TABLE: &[(&str, &str, Option<&str>)] = &[
    // Bug report, exact inputs: a +CC number must keep every digit after the country code
    ("+4915112345678", "US", Some("+4915112345678")),
    ("+4989123456", "RU", Some("+4989123456")),
    ("+441214960018", "US", Some("+441214960018")),
    ("+33123456789", "US", Some("+33123456789")),
    ("+5511912345678", "US", Some("+5511912345678")),
    ("+8613812345678", "US", Some("+8613812345678")),
    ("+390612345678", "GB", Some("+390612345678")),
    ("+390612345678", "IN", Some("+390612345678")),
    ("+390612345678", "DE", Some("+390612345678")),
    // Bug report numbers as a user would type them, other tenants too
    ("+49 151 12345678", "US", Some("+4915112345678")),
    ("+49 151 1234 5678", "IN", Some("+4915112345678")),
    ("+49 89 123456", "RU", Some("+4989123456")),
    ("+49 (89) 123456", "US", Some("+4989123456")),
    ("+44 121 496 0018", "US", Some("+441214960018")),
    ("+33 1 23 45 67 89", "US", Some("+33123456789")),
    ("+55 (11) 91234-5678", "US", Some("+5511912345678")),
    ("+86 138 1234 5678", "US", Some("+8613812345678")),
    ("+39 06 1234 5678", "GB", Some("+390612345678")),
    ("+39 06 1234 5678", "RU", Some("+390612345678")),
    // US tenant, national format (trunk prefix 1 optional)
    ("(201) 555-0123", "US", Some("+12015550123")),
    ("201-555-0123", "US", Some("+12015550123")),
    ("201.555.0123", "US", Some("+12015550123")),
    ("1 (201) 555-0123", "US", Some("+12015550123")),
    ("1-650-253-0000", "US", Some("+16502530000")),
    ("(650) 253-0000", "US", Some("+16502530000")),
    // GB tenant, national format with trunk 0
    ("020 7946 0018", "GB", Some("+442079460018")),
    ("(020) 7946 0018", "GB", Some("+442079460018")),
    ("0121 496 0018", "GB", Some("+441214960018")),
    ("07400 123456", "GB", Some("+447400123456")),
    ("0121-234-5678", "GB", Some("+441212345678")),
    // DE tenant, national format with trunk 0
    ("030 123456", "DE", Some("+4930123456")),
    ("(030) 123456", "DE", Some("+4930123456")),
    ("089 123456", "DE", Some("+4989123456")),
    ("01512 3456789", "DE", Some("+4915123456789")),
    ("0151/12345678", "DE", Some("+4915112345678")),
    // RU tenant, national format with trunk 8 (or without it)
    ("8 (495) 123-45-67", "RU", Some("+74951234567")),
    ("8 912 345-67-89", "RU", Some("+79123456789")),
    ("89123456789", "RU", Some("+79123456789")),
    ("(495) 123-45-67", "RU", Some("+74951234567")),
    ("8 (301) 123-45-67", "RU", Some("+73011234567")),
    // IN tenant, national format with or without trunk 0
    ("07471180076", "IN", Some("+917471180076")),
    ("7471180076", "IN", Some("+917471180076")),
    ("0 74711 80076", "IN", Some("+917471180076")),
    ("081234 56789", "IN", Some("+918123456789")),
    ("074104 10123", "IN", Some("+917410410123")),
    ("74104-10123", "IN", Some("+917410410123")),
    // Tenant's own country written as +CC
    ("+1 201-555-0123", "US", Some("+12015550123")),
    ("+1 (650) 253-0000", "US", Some("+16502530000")),
    ("+44 20 7946 0018", "GB", Some("+442079460018")),
    ("+44 7400 123456", "GB", Some("+447400123456")),
    ("+49 30 123456", "DE", Some("+4930123456")),
    ("+49 1512 3456789", "DE", Some("+4915123456789")),
    ("+7 (495) 123-45-67", "RU", Some("+74951234567")),
    ("+7 912 345 67 89", "RU", Some("+79123456789")),
    ("+91 74711 80076", "IN", Some("+917471180076")),
    ("+91-81234-56789", "IN", Some("+918123456789")),
    // Foreign +CC numbers in a US tenant
    ("+44 20 7946 0018", "US", Some("+442079460018")),
    ("+49 30 123456", "US", Some("+4930123456")),
    ("+91 74711 80076", "US", Some("+917471180076")),
    ("+7 912 345-67-89", "US", Some("+79123456789")),
    ("+61 412 345 678", "US", Some("+61412345678")),
    ("+81 90-1234-5678", "US", Some("+819012345678")),
    ("+52 222 123 4567", "US", Some("+522221234567")),
    ("+31 10 123 4567", "US", Some("+31101234567")),
    // Foreign +CC numbers in a GB tenant
    ("+1 (201) 555-0123", "GB", Some("+12015550123")),
    ("+33 6 12 34 56 78", "GB", Some("+33612345678")),
    ("+34 612 34 56 78", "GB", Some("+34612345678")),
    ("+31 6 12345678", "GB", Some("+31612345678")),
    ("+49 1512 3456789", "GB", Some("+4915123456789")),
    ("+86 131 2345 6789", "GB", Some("+8613123456789")),
    ("+91 74104 10123", "GB", Some("+917410410123")),
    // Foreign +CC numbers in a DE tenant
    ("+44 7400 123456", "DE", Some("+447400123456")),
    ("+39 312 345 6789", "DE", Some("+393123456789")),
    ("+1 506 234 5678", "DE", Some("+15062345678")),
    ("+55 11 2345-6789", "DE", Some("+551123456789")),
    ("+81 3-1234-5678", "DE", Some("+81312345678")),
    ("+7 (495) 123-45-67", "DE", Some("+74951234567")),
    ("+33 1 23 45 67 89", "DE", Some("+33123456789")),
    // Foreign +CC numbers in an IN tenant
    ("+1-650-253-0000", "IN", Some("+16502530000")),
    ("+44 121 496 0018", "IN", Some("+441214960018")),
    ("+49 151 12345678", "IN", Some("+4915112345678")),
    ("+61 2 1234 5678", "IN", Some("+61212345678")),
    ("+86 10 1234 5678", "IN", Some("+861012345678")),
    ("+31 10 123 4567", "IN", Some("+31101234567")),
    ("+7 495 123 45 67", "IN", Some("+74951234567")),
    // Foreign +CC numbers in an RU tenant (RU trunk 8 must not eat a leading 8)
    ("+1 (650) 253-0000", "RU", Some("+16502530000")),
    ("+44 7400 123456", "RU", Some("+447400123456")),
    ("+49 30 123456", "RU", Some("+4930123456")),
    ("+49 89 12345678", "RU", Some("+498912345678")),
    ("+91 81234 56789", "RU", Some("+918123456789")),
    ("+33 1 23 45 67 89", "RU", Some("+33123456789")),
    ("+52 222 123 4567", "RU", Some("+522221234567")),
    ("+34 810 12 34 56", "RU", Some("+34810123456")),
    ("+81 80-1234-5678", "RU", Some("+818012345678")),
    // US tenant, IDD 011
    ("011 44 20 7946 0018", "US", Some("+442079460018")),
    ("011 49 30 123456", "US", Some("+4930123456")),
    ("011 49 151 12345678", "US", Some("+4915112345678")),
    ("011 33 1 23 45 67 89", "US", Some("+33123456789")),
    ("011 81 90 1234 5678", "US", Some("+819012345678")),
    ("011-39-06-1234-5678", "US", Some("+390612345678")),
    ("011 91 74711 80076", "US", Some("+917471180076")),
    ("011 7 495 123 45 67", "US", Some("+74951234567")),
    ("011 1 201 555 0123", "US", Some("+12015550123")),
    // GB tenant, IDD 00
    ("00 49 1512 3456789", "GB", Some("+4915123456789")),
    ("00 1 201 555 0123", "GB", Some("+12015550123")),
    ("00 61 412 345 678", "GB", Some("+61412345678")),
    ("00 39 06 1234 5678", "GB", Some("+390612345678")),
    ("0044 20 7946 0018", "GB", Some("+442079460018")),
    ("00 52 222 123 4567", "GB", Some("+522221234567")),
    // DE tenant, IDD 00
    ("00 44 20 7946 0018", "DE", Some("+442079460018")),
    ("0049 30 123456", "DE", Some("+4930123456")),
    ("00 7 495 123-45-67", "DE", Some("+74951234567")),
    ("00 86 10 1234 5678", "DE", Some("+861012345678")),
    ("00 1 (650) 253-0000", "DE", Some("+16502530000")),
    ("0033 6 12 34 56 78", "DE", Some("+33612345678")),
    // IN tenant, IDD 00
    ("00 49 151 12345678", "IN", Some("+4915112345678")),
    ("00 1 (650) 253-0000", "IN", Some("+16502530000")),
    ("00 44 7400 123456", "IN", Some("+447400123456")),
    ("0091 74711 80076", "IN", Some("+917471180076")),
    ("00 55 11 96123-4567", "IN", Some("+5511961234567")),
    ("00 39 312 345 6789", "IN", Some("+393123456789")),
    // RU tenant, IDD 810 (metadata: international prefix 810, preferred 8~10; users type 8 10 ...)
    ("810 49 30 123456", "RU", Some("+4930123456")),
    ("8 10 49 89 123456", "RU", Some("+4989123456")),
    ("810 49 151 12345678", "RU", Some("+4915112345678")),
    ("810 1 201 555 0123", "RU", Some("+12015550123")),
    ("8-10-44-20-7946-0018", "RU", Some("+442079460018")),
    ("810 39 06 1234 5678", "RU", Some("+390612345678")),
    ("8 10 86 138 1234 5678", "RU", Some("+8613812345678")),
    ("8 10 7 495 123 45 67", "RU", Some("+74951234567")),
    // Italian numbers: the leading 0 is part of the number and must be kept
    ("+39 06 1234 5678", "US", Some("+390612345678")),
    ("+39 02 1234 5678", "RU", Some("+390212345678")),
    ("0039 02 1234 5678", "DE", Some("+390212345678")),
    ("011 39 02 1234 5678", "US", Some("+390212345678")),
    ("+39 (0)6 1234 5678", "US", Some("+390612345678")),
    ("+39 0612345678", "IN", Some("+390612345678")),
    // +CC (0) style: libphonenumber drops the trunk 0 written after the country code
    ("+44 (0)20 7946 0018", "US", Some("+442079460018")),
    ("+44 (0) 7400 123456", "DE", Some("+447400123456")),
    ("+49 (0)30 123456", "GB", Some("+4930123456")),
    ("00 44 (0)20 7946 0018", "DE", Some("+442079460018")),
    ("011 44 (0) 20 7946 0018", "US", Some("+442079460018")),
    ("+91 (0)74711 80076", "RU", Some("+917471180076")),
    ("+33 (0)6 12 34 56 78", "IN", Some("+33612345678")),
    ("810 49 (0)89 123456", "RU", Some("+4989123456")),
    // Must be refused: too short, invalid for the country, unknown country code, foreign number without + or IDD
    ("+49 30", "US", None),
    ("+44 20 7946", "GB", None),
    ("020 7946", "GB", None),
    ("12345", "US", None),
    ("555-0123", "US", None),
    ("+1 201 555 012", "US", None),
    ("+1 123 456 7890", "US", None),
    ("+7 000 000 00 00", "RU", None),
    ("8 (000) 123-45-67", "RU", None),
    ("011 44", "US", None),
    ("00 999 1234567", "DE", None),
    ("+999 1234567", "IN", None),
    ("+44 7400 12345", "IN", None),
    ("+91 74711 8007", "IN", None),
    ("0049 30", "DE", None),
    ("+39 06", "GB", None),
    ("44 20 7946 0018", "US", None),
    ("810 49", "RU", None),
    ("+33 1 23 45 67 8", "DE", None),
    ]; // 162 cases

    /// Other tenant regions' dialling-out prefixes (AU 0011/0014..., JP 010, BR 00 + carrier,
    /// MX 00/09, ...).
    #[rustfmt::skip]
    const PHONE_TABLE_MORE_TENANTS: &[(&str, &str, Option<&str>)] = &[
    // AU tenant: IDD is 0011 (also 0014/0015/0016/0018/0019); plain 00 is not an IDD in AU
    ("0011 44 20 7946 0018", "AU", Some("+442079460018")),
    ("0011 1 201 555 0123", "AU", Some("+12015550123")),
    ("0014 44 20 7946 0018", "AU", Some("+442079460018")),
    ("0015 49 30 123456", "AU", Some("+4930123456")),
    ("0412 345 678", "AU", Some("+61412345678")),
    ("(02) 1234 5678", "AU", Some("+61212345678")),
    ("00 44 20 7946 0018", "AU", None),
    // JP tenant: IDD 010; 00 is not an IDD in JP
    ("010 44 20 7946 0018", "JP", Some("+442079460018")),
    ("010-1-650-253-0000", "JP", Some("+16502530000")),
    ("090-1234-5678", "JP", Some("+819012345678")),
    ("03-1234-5678", "JP", Some("+81312345678")),
    ("00 44 20 7946 0018", "JP", None),
    // BR tenant: IDD is 00 + a 2-digit carrier code (0021, 0014, ...); bare 00 + CC is refused
    ("0021 44 20 7946 0018", "BR", Some("+442079460018")),
    ("0021 41 44 668 18 00", "BR", Some("+41446681800")),
    ("00 44 20 7946 0018", "BR", None),
    ("00 41 44 668 18 00", "BR", None),
    ("(11) 96123-4567", "BR", Some("+5511961234567")),
    ("0 21 11 96123-4567", "BR", Some("+5511961234567")),
    // CA, MX (IDD 00 or 09), FR, CN, ES, NL, IT tenants
    ("011 44 20 7946 0018", "CA", Some("+442079460018")),
    ("(506) 234-5678", "CA", Some("+15062345678")),
    ("00 44 20 7946 0018", "MX", Some("+442079460018")),
    ("09 44 20 7946 0018", "MX", Some("+442079460018")),
    ("222 123 4567", "MX", Some("+522221234567")),
    ("00 44 20 7946 0018", "FR", Some("+442079460018")),
    ("06 12 34 56 78", "FR", Some("+33612345678")),
    ("+33 (0)1 23 45 67 89", "FR", Some("+33123456789")),
    ("00 44 20 7946 0018", "CN", Some("+442079460018")),
    ("131 2345 6789", "CN", Some("+8613123456789")),
    ("010 1234 5678", "CN", Some("+861012345678")),
    ("00 39 06 1234 5678", "ES", Some("+390612345678")),
    ("612 34 56 78", "ES", Some("+34612345678")),
    ("06 12345678", "NL", Some("+31612345678")),
    ("00 49 30 123456", "NL", Some("+4930123456")),
    ("06 1234 5678", "IT", Some("+390612345678")),
    ("00 44 20 7946 0018", "IT", Some("+442079460018")),
    ]; // 35 cases

    /// Numbers whose first national digit is their country's trunk prefix (Russia's 8),
    /// and national numbers written without it, keep every digit.
    #[test]
    fn trunk_digits_that_belong_to_the_number_are_kept() {
        for (raw, region, want) in [
            ("+7 812 123-45-67", "US", "+78121234567"),
            ("+7 812 123-45-67", "RU", "+78121234567"),
            ("+7 800 555-35-35", "GB", "+78005553535"),
            ("00 7 812 123 45 67", "DE", "+78121234567"),
            ("8 (812) 123-45-67", "RU", "+78121234567"),
            ("(812) 123-45-67", "RU", "+78121234567"),
            ("810 7 812 123 45 67", "RU", "+78121234567"),
            ("91234 56789", "IN", "+919123456789"),
            ("+91 91234 56789", "US", "+919123456789"),
        ] {
            let got = PhoneNumber::parse(raw, Region::parse(region).unwrap());
            assert_eq!(
                got.as_ref().map(PhoneNumber::as_str),
                Ok(want),
                "{raw} in {region}"
            );
        }
    }

    #[test]
    fn international_numbers_keep_their_digits_in_every_region() {
        let mut failures = Vec::new();
        for &(raw, region, expected) in PHONE_TABLE.iter().chain(PHONE_TABLE_MORE_TENANTS) {
            let got = PhoneNumber::parse(raw, Region::parse(region).unwrap());
            let got = got.as_ref().map(PhoneNumber::as_str).ok();
            if got != expected {
                failures.push(format!(
                    "{raw:?} in {region}: got {got:?}, want {expected:?}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
