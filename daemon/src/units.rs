//! Sizes as users write them (`64M`, `1.5G`, `512KiB`, `4096`), for log caps,
//! memory limits and retention; one parser for `mgr` and `mgrctl` alike.
//! This module only parses and prints.

/// Parses a size in bytes: a number, optionally with a unit K, M, G or T
/// (powers of 1024; `KiB`, `KB`, `k` and the like mean the same), at most
/// 2^60 bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a size (such as 512K, 64M, 1.5G or 4096)");
    let trimmed = text.trim();
    let split = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b')).unwrap_or(&unit);
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > (1u64 << 60) as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_the_units_users_write() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64 mb"), Ok(64 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        for bad in ["", "M", "-1M", "1X", "1e9", "99999999999T", "1..2M"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
