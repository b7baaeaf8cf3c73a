//! Amounts: signed integer fen inside, a signed decimal string at the HIS boundary
//! (docs/his-interface.md §3.2).

use std::fmt;

/// The largest amount accepted in one instruction: 99,999,999.99 yuan.
pub const MAX_FEN: i64 = 9_999_999_999;

/// Why an amount string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must start with an explicit sign, + to collect or - to refund")]
    MissingSign,
    #[error("amount may contain only ASCII digits 0-9, one sign and one decimal point")]
    BadCharacter,
    #[error("amount has more than two decimals")]
    TooManyDecimals,
    #[error("amount has no digits before or after the decimal point")]
    MissingDigits,
    #[error("amount has a leading zero")]
    LeadingZero,
    #[error("amount is zero")]
    Zero,
    #[error("amount exceeds 99999999.99")]
    TooLarge,
}

/// A signed amount in fen (1/100 yuan). Positive collects, negative refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(i64);

impl Amount {
    pub fn from_fen(fen: i64) -> Option<Self> {
        (fen != 0 && fen.abs() <= MAX_FEN).then_some(Amount(fen))
    }
    pub fn fen(self) -> i64 {
        self.0
    }
    pub fn abs_fen(self) -> u64 {
        self.0.unsigned_abs()
    }
    pub fn is_refund(self) -> bool {
        self.0 < 0
    }

    /// Parses `+12.50`, `-3`, `+0.05`. Refuses exponents, more than two decimals, zero,
    /// double signs, empty input, non-ASCII digits and anything above [`MAX_FEN`].
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        let (neg, rest) = match s.as_bytes()[0] {
            b'+' => (false, &s[1..]),
            b'-' => (true, &s[1..]),
            _ => {
                return Err(if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    AmountError::MissingSign
                } else {
                    AmountError::BadCharacter
                })
            }
        };
        if !rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(AmountError::BadCharacter);
        }
        let (int, frac) = match rest.split_once('.') {
            Some((i, f)) => {
                if f.contains('.') {
                    return Err(AmountError::BadCharacter);
                }
                (i, Some(f))
            }
            None => (rest, None),
        };
        if int.is_empty() || frac.is_some_and(str::is_empty) {
            return Err(AmountError::MissingDigits);
        }
        if frac.is_some_and(|f| f.len() > 2) {
            return Err(AmountError::TooManyDecimals);
        }
        if int.len() > 1 && int.starts_with('0') {
            return Err(AmountError::LeadingZero);
        }
        if int.len() > 8 {
            return Err(AmountError::TooLarge);
        }
        let yuan: i64 = int.parse().map_err(|_| AmountError::TooLarge)?;
        let cents: i64 = match frac {
            None => 0,
            Some(f) if f.len() == 1 => f.parse::<i64>().map_err(|_| AmountError::BadCharacter)? * 10,
            Some(f) => f.parse().map_err(|_| AmountError::BadCharacter)?,
        };
        let fen = yuan * 100 + cents;
        if fen == 0 {
            return Err(AmountError::Zero);
        }
        Ok(Amount(if neg { -fen } else { fen }))
    }
}

impl fmt::Display for Amount {
    /// Always with a sign and two decimals: `+12.50`, `-3.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", a / 100, a % 100)
    }
}

/// Formats unsigned fen as yuan for people: `12.50`.
pub fn yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (s, fen) in
            [("+12.50", 1250), ("-3.00", -300), ("+1", 100), ("+0.05", 5), ("+0.5", 50), ("+99999999.99", MAX_FEN)]
        {
            assert_eq!(Amount::parse(s).map(Amount::fen), Ok(fen), "{s}");
        }
        assert_eq!(Amount::parse("+12.5").unwrap().to_string(), "+12.50");
        assert_eq!(Amount::parse("-3").unwrap().to_string(), "-3.00");
    }

    #[test]
    fn refuses_each_bad_form_with_its_reason() {
        use AmountError::*;
        let cases = [
            ("", Empty),
            ("12.50", MissingSign),
            ("+1e3", BadCharacter),
            ("12.345", MissingSign),
            ("+12.345", TooManyDecimals),
            ("+0.00", Zero),
            ("-0", Zero),
            ("--1", BadCharacter),
            ("+-1", BadCharacter),
            ("+", MissingDigits),
            ("+.5", MissingDigits),
            ("+5.", MissingDigits),
            ("+1.2.3", BadCharacter),
            ("+１２", BadCharacter),
            ("+١٢", BadCharacter),
            (" +1", BadCharacter),
            ("+1 ", BadCharacter),
            ("+1,000", BadCharacter),
            ("+012", LeadingZero),
            ("+100000000", TooLarge),
            ("+99999999999999999999999", TooLarge),
            ("NaN", BadCharacter),
        ];
        for (s, e) in cases {
            assert_eq!(Amount::parse(s), Err(e), "{s:?}");
        }
    }
}
