//! Token amounts: integers in base units (`u128`, 18 decimals, like ERC-20 tokens).
//!
//! There are no floats anywhere in amount handling. Human-facing text uses
//! either a plain base-unit integer (`"1500000000000000000"`) or a decimal
//! token amount with the symbol (`"1.5 LODE"`); both parse exactly, and a
//! token amount with more than 18 decimals is rejected rather than rounded.

use serde::{Deserializer, Serializer};
use std::fmt;

/// An amount in base units.
pub type Amount = u128;

/// Decimals of the token (fixed: EVM-compatible).
pub const DECIMALS: u32 = 18;

/// One whole token in base units (10^18).
pub const ONE_TOKEN: Amount = 1_000_000_000_000_000_000;

/// The token symbol used in text.
pub const SYMBOL: &str = "LODE";

/// Why a text amount could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a non-negative integer or a decimal `<n> LODE` amount")]
    Invalid(String),
    #[error("amount {0:?} has more than 18 decimals")]
    TooPrecise(String),
    #[error("amount {0:?} does not fit in 128 bits")]
    Overflow(String),
}

/// Parses `"123"` (base units) or `"1.5 LODE"` / `"1.5LODE"` (tokens).
/// Underscores between digits are allowed for readability (`"1_000 LODE"`).
pub fn parse_amount(text: &str) -> Result<Amount, AmountError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(AmountError::Empty);
    }
    let invalid = || AmountError::Invalid(text.to_string());
    let overflow = || AmountError::Overflow(text.to_string());
    if let Some(tokens) = t.strip_suffix(SYMBOL) {
        let tokens = tokens.trim_end();
        let (int, frac) = match tokens.split_once('.') {
            Some((i, f)) => (i, f),
            None => (tokens, ""),
        };
        let int = digits(int).ok_or_else(invalid)?;
        let frac: String = if frac.is_empty() {
            String::new()
        } else {
            digits(frac).ok_or_else(invalid)?
        };
        if int.is_empty() {
            return Err(invalid());
        }
        if frac.len() > DECIMALS as usize {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        let whole: u128 = int.parse().map_err(|_| overflow())?;
        let mut frac_units: u128 = 0;
        if !frac.is_empty() {
            frac_units = frac.parse().map_err(|_| invalid())?;
            frac_units *= 10u128.pow(DECIMALS - frac.len() as u32);
        }
        whole
            .checked_mul(ONE_TOKEN)
            .and_then(|w| w.checked_add(frac_units))
            .ok_or_else(overflow)
    } else {
        let d = digits(t).ok_or_else(invalid)?;
        if d.is_empty() {
            return Err(invalid());
        }
        d.parse().map_err(|_| overflow())
    }
}

/// Digits with optional `_` separators (not leading/trailing/doubled); `None` if anything else.
fn digits(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some(String::new());
    }
    if s.starts_with('_') || s.ends_with('_') || s.contains("__") {
        return None;
    }
    if !s.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    Some(s.chars().filter(|c| *c != '_').collect())
}

/// Formats base units as a token amount: `1.5 LODE`, `0 LODE`,
/// `0.000000000000000001 LODE`. Exact (no rounding).
pub fn format_tokens(amount: Amount) -> String {
    format!("{} {SYMBOL}", format_token_number(amount))
}

/// Like [`format_tokens`] without the symbol.
pub fn format_token_number(amount: Amount) -> String {
    let whole = amount / ONE_TOKEN;
    let frac = amount % ONE_TOKEN;
    if frac == 0 {
        return group_thousands(whole);
    }
    let f = format!("{frac:018}");
    format!("{}.{}", group_thousands(whole), f.trim_end_matches('0'))
}

fn group_thousands(n: u128) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Serde helper for `u128` amounts: a decimal string in human-readable
/// formats (TOML and JSON cannot hold 128-bit integers faithfully), the
/// native integer in binary formats. On input, human-readable formats also
/// accept non-negative integers and `"<n> LODE"` strings.
pub mod serde_amount {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Amount, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(v)
        } else {
            s.serialize_u128(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        if d.is_human_readable() {
            d.deserialize_any(AmountVisitor)
        } else {
            d.deserialize_u128(AmountVisitor)
        }
    }

    struct AmountVisitor;

    impl serde::de::Visitor<'_> for AmountVisitor {
        type Value = Amount;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a token amount: a base-unit integer string or \"<n> LODE\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Amount, E> {
            parse_amount(v).map_err(E::custom)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Amount, E> {
            Ok(v.into())
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Amount, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Amount, E> {
            u128::try_from(v).map_err(|_| E::custom("amount must not be negative"))
        }
    }
}

/// Like [`serde_amount`] for `Vec<(Did-like key, Amount)>`-free use: a list of amounts.
pub mod serde_amount_opt {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct W(#[serde(with = "super::serde_amount")] Amount);

    pub fn serialize<S: Serializer>(v: &Option<Amount>, s: S) -> Result<S::Ok, S::Error> {
        v.map(W).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Amount>, D::Error> {
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_exactly() {
        assert_eq!(parse_amount("0"), Ok(0));
        assert_eq!(parse_amount("123"), Ok(123));
        assert_eq!(parse_amount("1_000"), Ok(1000));
        assert_eq!(parse_amount("1 LODE"), Ok(ONE_TOKEN));
        assert_eq!(parse_amount("1.5 LODE"), Ok(ONE_TOKEN + ONE_TOKEN / 2));
        assert_eq!(parse_amount("0.000000000000000001 LODE"), Ok(1));
        assert_eq!(
            parse_amount("1_000_000_000 LODE"),
            Ok(1_000_000_000 * ONE_TOKEN)
        );
        assert_eq!(parse_amount("2LODE"), Ok(2 * ONE_TOKEN));
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(parse_amount(""), Err(AmountError::Empty));
        assert!(matches!(parse_amount("-1"), Err(AmountError::Invalid(_))));
        assert!(matches!(parse_amount("1.5"), Err(AmountError::Invalid(_))));
        assert!(matches!(parse_amount("1e18"), Err(AmountError::Invalid(_))));
        assert!(matches!(parse_amount("_1"), Err(AmountError::Invalid(_))));
        assert!(matches!(
            parse_amount(". LODE"),
            Err(AmountError::Invalid(_))
        ));
        assert!(matches!(
            parse_amount("0.0000000000000000001 LODE"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_amount("340282366920938463463374607431768211456"),
            Err(AmountError::Overflow(_))
        ));
        assert!(matches!(
            parse_amount("340282366920938463464 LODE"),
            Err(AmountError::Overflow(_))
        ));
    }

    #[test]
    fn formats_exactly() {
        assert_eq!(format_tokens(0), "0 LODE");
        assert_eq!(format_tokens(1), "0.000000000000000001 LODE");
        assert_eq!(format_tokens(1_500_000 * ONE_TOKEN), "1,500,000 LODE");
        assert_eq!(format_tokens(ONE_TOKEN / 4), "0.25 LODE");
    }

    proptest::proptest! {
        #[test]
        fn format_parse_round_trip(a in proptest::num::u128::ANY) {
            let text = format_tokens(a).replace(',', "_");
            proptest::prop_assert_eq!(parse_amount(&text), Ok(a));
            proptest::prop_assert_eq!(parse_amount(&a.to_string()), Ok(a));
        }
    }
}
