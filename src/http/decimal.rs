//! JSON numbers read straight to the nearest f32, in the same pass that checks their
//! grammar. Vectors arrive as hundreds of decimals per request (a 384-d query is ~7 KB of
//! text), and the standard parser, after our own grammar scan, cost ~40 ns a number: as
//! much as the rest of the HTTP exchange of a search. Here the common case (up to 18
//! digits, read eight at a time, and a small exponent) takes one or two exact f64
//! operations; any case the shortcut cannot prove right is left to the standard parser, so
//! every result is the one `str::parse::<f32>` gives, bit for bit.
//!
//! Why it is exact: with a mantissa `m <= 2^53` and `|e| <= 22`, both `m` and `10^|e|` are
//! exact f64s, so `m * 10^e` computed in f64 is the correctly rounded f64 of the decimal
//! (Clinger's fast path). Rounding that f64 to f32 gives the correctly rounded f32 of the
//! decimal unless the f64 landed exactly on a midpoint between two f32s (rounding is
//! monotone, and every f32 midpoint is itself an f64), which is checked. Digits that do
//! not fit below 2^53 bracket the decimal between `m·10^e` and `(m+1)·10^e`; when both
//! ends round to the same f32, so does everything between them.

/// Powers of ten that f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Mantissas up to here take one more digit without passing `u64`.
const ROOM_FOR_ONE: u64 = 1_000_000_000_000_000_000 / 10;
/// ...and up to here eight more.
const ROOM_FOR_EIGHT: u64 = 1_000_000_000_000_000_000 / 100_000_000;
/// Mantissas below this are exact in f64 (with `m + 1`).
const EXACT: u64 = 1 << 53;

/// One JSON number at the start of `b`, checked against the grammar
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` and followed by a delimiter (not a
/// letter, digit or `.`): its length, and its nearest f32 when the fast path could decide
/// it (`None`: parse the text with `str::parse::<f32>`). `None` overall: not a number.
pub fn scan(b: &[u8]) -> Option<(usize, Option<f32>)> {
    let mut i = 0;
    let negative = b.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let mut digits = Digits::default();
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => i = digits.read(b, i, false),
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        let from = i + 1;
        i = digits.read(b, from, true);
        if i == from {
            return None;
        }
    }
    let mut exponent: i64 = 0;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let sign = match b.get(i) {
            Some(b'-') => {
                i += 1;
                -1
            }
            Some(b'+') => {
                i += 1;
                1
            }
            _ => 1,
        };
        let from = i;
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            // Saturates far past any exponent the fast path takes.
            exponent = (exponent * 10 + i64::from(c - b'0')).min(1 << 32);
            i += 1;
        }
        if i == from {
            return None;
        }
        exponent *= sign;
    }
    // A number runs until a delimiter: `01` or `1x` is not a number followed by more.
    if b.get(i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
    {
        return None;
    }
    Some((i, digits.to_f32(exponent, negative)))
}

/// The digits of a number as read so far: it equals `mantissa · 10^scale`, plus something
/// below one unit of the mantissa's last digit when `truncated`.
#[derive(Default)]
struct Digits {
    mantissa: u64,
    scale: i64,
    truncated: bool,
}

impl Digits {
    /// Reads the run of digits at `b[i..]` (of the fraction when `fraction`); returns
    /// where it ends. Eight at a time while they fit, so that the mantissa's chain of
    /// multiply-adds is not the cost of a long fraction.
    fn read(&mut self, b: &[u8], mut i: usize, fraction: bool) -> usize {
        while self.mantissa < ROOM_FOR_EIGHT {
            let Some(eight) = b.get(i..i + 8).and_then(eight_digits) else {
                break;
            };
            self.mantissa = self.mantissa * 100_000_000 + eight;
            self.scale -= if fraction { 8 } else { 0 };
            i += 8;
        }
        while let Some(&c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            let d = u64::from(c - b'0');
            if self.mantissa < ROOM_FOR_ONE {
                self.mantissa = self.mantissa * 10 + d;
                self.scale -= i64::from(fraction);
            } else {
                // Past 18 digits: dropped, remembered only as "there was more".
                self.truncated |= d != 0;
                self.scale += i64::from(!fraction);
            }
            i += 1;
        }
        i
    }

    /// The nearest f32 of `±digits · 10^exponent`, when the fast path can prove it.
    fn to_f32(&self, exponent: i64, negative: bool) -> Option<f32> {
        let sign = |v: f32| if negative { -v } else { v };
        let (mut m, mut e, mut truncated) = (self.mantissa, self.scale + exponent, self.truncated);
        if m == 0 {
            // Digits are dropped only after a nonzero one: this is a zero.
            return Some(sign(0.0));
        }
        // Down to a mantissa exact in f64 with one more unit (at most 3 digits cut, as
        // at most 18 were read): the decimal lies in the bracket [m, m + 1) · 10^e.
        while m >= EXACT {
            truncated |= m % 10 != 0;
            m /= 10;
            e += 1;
        }
        if !(-22..=22).contains(&e) {
            return None;
        }
        let low = nearest_f32(scaled(m, e))?;
        if truncated && nearest_f32(scaled(m + 1, e))? != low {
            return None;
        }
        Some(sign(low))
    }
}

/// The value of eight ASCII digits, or `None` if any byte is not a digit (the SWAR
/// check and conversion of fast_float / Rust's own float parser).
fn eight_digits(bytes: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(bytes.try_into().ok()?);
    let all_digits = ((v & 0xF0F0_F0F0_F0F0_F0F0)
        | (((v.wrapping_add(0x0606_0606_0606_0606)) & 0xF0F0_F0F0_F0F0_F0F0) >> 4))
        == 0x3333_3333_3333_3333;
    if !all_digits {
        return None;
    }
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let mut v = v - 0x3030_3030_3030_3030;
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let v1 = (v & MASK).wrapping_mul(MUL1);
    let v2 = ((v >> 16) & MASK).wrapping_mul(MUL2);
    Some(u64::from((v1.wrapping_add(v2) >> 32) as u32))
}

/// `m · 10^e` correctly rounded to f64 (`m <= 2^53`, `|e| <= 22`: one exact operation).
fn scaled(m: u64, e: i64) -> f64 {
    let p = POW10[e.unsigned_abs() as usize];
    if e >= 0 {
        m as f64 * p
    } else {
        m as f64 / p
    }
}

/// `v` rounded to f32, unless it lies exactly halfway between two f32s (then the decimal
/// it came from may be on either side, and only the full parser can tell). `v` is within
/// 1e-22..1e38, so its f32 is normal and the 29 low bits of its f64 fraction are exactly
/// what f32 drops.
fn nearest_f32(v: f64) -> Option<f32> {
    const DROPPED: u64 = (1 << 29) - 1;
    const HALF: u64 = 1 << 28;
    if v.to_bits() & DROPPED == HALF {
        return None;
    }
    Some(v as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value `scan` gives for `text`, the full parser's where the fast path passed.
    fn read(text: &str) -> Option<f32> {
        let (len, fast) = scan(text.as_bytes())?;
        assert_eq!(len, text.len(), "{text}");
        Some(fast.unwrap_or_else(|| text.parse().unwrap()))
    }

    fn agrees(text: &str) {
        let ours = read(text).unwrap_or_else(|| panic!("{text} not scanned"));
        let std: f32 = text.parse().unwrap();
        assert_eq!(ours.to_bits(), std.to_bits(), "{text}: {ours} vs {std}");
    }

    /// A small deterministic generator (xorshift), so that the test needs no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn agrees_with_the_standard_parser_on_the_numbers_clients_send() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut fast = 0;
        for n in 0..400_000 {
            // Embedding-like values: an f32 in (-1, 1), printed as Python prints the f64
            // of an f32 (17 digits), as JS / serde print the f32 (shortest), and with
            // fewer digits; plus values across the whole exponent range.
            let r = rng.next();
            let v = if n % 4 == 3 {
                f32::from_bits((r >> 32) as u32)
            } else {
                ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
            };
            if !v.is_finite() {
                continue;
            }
            let texts = [
                format!("{}", v as f64),
                format!("{v}"),
                format!("{v:e}"),
                format!("{:.17e}", v as f64),
                format!("{:.9}", v),
                format!("{:.3}", v as f64),
                format!("{:.25}", v as f64),
            ];
            for t in &texts {
                agrees(t);
                fast += usize::from(scan(t.as_bytes()).is_some_and(|(_, f)| f.is_some()));
            }
        }
        // The shortcut must be the common case, or it buys nothing.
        assert!(fast > 400_000 * 7 / 2, "fast path taken {fast} times");
    }

    #[test]
    fn agrees_on_midpoints_long_mantissas_and_extremes() {
        // Exact f32 midpoints (where double rounding would go wrong) and their neighbours.
        let mut rng = Rng(7);
        for _ in 0..100_000 {
            let a = f32::from_bits((rng.next() as u32 >> 2) | 0x3000_0000);
            let mid = (a as f64 + f32::from_bits(a.to_bits() + 1) as f64) / 2.0;
            for t in [
                format!("{mid}"),
                format!("{:.30e}", mid),
                format!("{:.12e}", mid),
                format!("{}", f64::from_bits(mid.to_bits() + 1)),
                format!("{}", f64::from_bits(mid.to_bits() - 1)),
            ] {
                agrees(&t);
            }
        }
        for t in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "0e999999999999",
            "1",
            "-1",
            "1e22",
            "1e23",
            "1e-22",
            "1e-23",
            "3.4028235e38",
            "3.4028236e38",
            "1e39",
            "-1e39",
            "1e-46",
            "1.1754943e-38",
            "1.4e-45",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001",
            "9999999999999999",
            "999999999999999.9",
            "0.99999999999999999999",
            "16777217",
            "16777217.000000001",
            "33554434.999999999999",
            "1E5",
            "1e+5",
            "-0.0000012345678901234567e3",
        ] {
            agrees(t);
        }
    }

    #[test]
    fn takes_only_json_numbers_and_stops_at_delimiters() {
        for bad in [
            "", "-", "+1", ".5", "1.", "01", "1e", "1e+", "-x", "1x", "1.5.2", "0x10", "NaN",
            "Infinity",
        ] {
            assert!(scan(bad.as_bytes()).is_none(), "{bad:?} scanned");
        }
        for (text, len) in [("1,", 1), ("-2.5]", 4), ("3e2 ", 3), ("0}", 1), ("7\n", 1)] {
            assert_eq!(scan(text.as_bytes()).map(|(l, _)| l), Some(len), "{text:?}");
        }
    }
}
