//! The dates and times a record can carry, and how the others are shown when they are refused.
//!
//! A record's dates are `YYYY-MM-DD` and its times RFC 3339: both need a four-digit year, so
//! only 0001-01-01 to 9999-12-31 has a documented form. Sources hold more: PostgreSQL has
//! `infinity`, years up to 294276 and BC dates, and a Parquet timestamp in seconds reaches
//! hundreds of billions of years. Such a value rejects its row, and the reason shows it as
//! PostgreSQL prints it (`infinity`, `0045-03-15 BC`, `20000-01-01 00:00:00+00`), computed here
//! on plain integers so that no value is too large to show. A leaf: sources and the mapping
//! both use it.

/// What a refusal says the range is.
pub const RANGE: &str = "0001-01-01..9999-12-31";
/// 0001-01-01, in days since 1970-01-01.
pub const FIRST_DAY: i64 = -719_162;
/// 9999-12-31, in days since 1970-01-01.
pub const LAST_DAY: i64 = 2_932_896;
const SECS_PER_DAY: i64 = 86_400;

/// 0001-01-01T00:00:00Z and the second after 9999-12-31T23:59:59Z, in seconds since 1970.
const FIRST_SEC: i64 = FIRST_DAY * SECS_PER_DAY;
const END_SEC: i64 = (LAST_DAY + 1) * SECS_PER_DAY;

pub fn day_in_range(days: i64) -> bool {
    (FIRST_DAY..=LAST_DAY).contains(&days)
}

pub fn secs_in_range(secs: i64) -> bool {
    (FIRST_SEC..END_SEC).contains(&secs)
}

/// `shown is outside 0001-01-01..9999-12-31`, the reason that rejects such a value.
pub fn outside(shown: &str) -> String {
    format!("{shown} is outside {RANGE}")
}

/// The year, month and day of a count of days since 1970-01-01, in the proleptic Gregorian
/// calendar with astronomical years (1 BC is year 0); exact for every `i64` a source can give
/// (H. Hinnant's `civil_from_days`, in i128 so that nothing overflows).
fn civil(days: i64) -> (i128, u32, u32) {
    let z = i128::from(days) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i128::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD`, or `YYYY-MM-DD BC` before year 1, as PostgreSQL prints a date.
pub fn date_text(days: i64) -> String {
    let (year, month, day) = civil(days);
    let (year, era) = if year <= 0 { (1 - year, " BC") } else { (year, "") };
    format!("{year:04}-{month:02}-{day:02}{era}")
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]+00[ BC]`, as PostgreSQL prints a `timestamptz` in UTC.
pub fn timestamp_text(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(SECS_PER_DAY);
    let of_day = secs.rem_euclid(SECS_PER_DAY);
    let date = date_text(days);
    let (date, era) = match date.strip_suffix(" BC") {
        Some(date) => (date.to_string(), " BC"),
        None => (date, ""),
    };
    let time = format!("{:02}:{:02}:{:02}", of_day / 3600, of_day / 60 % 60, of_day % 60);
    let fraction = match nanos {
        0 => String::new(),
        n => format!(".{n:09}").trim_end_matches('0').to_string(),
    };
    format!("{date} {time}{fraction}+00{era}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_is_the_four_digit_years() {
        assert_eq!(date_text(FIRST_DAY), "0001-01-01");
        assert_eq!(date_text(LAST_DAY), "9999-12-31");
        assert_eq!(date_text(0), "1970-01-01");
        assert!(day_in_range(FIRST_DAY) && day_in_range(LAST_DAY));
        assert!(!day_in_range(FIRST_DAY - 1) && !day_in_range(LAST_DAY + 1));
        assert!(secs_in_range(253_402_300_799), "9999-12-31T23:59:59Z");
        assert!(!secs_in_range(253_402_300_800));
        assert!(secs_in_range(-62_135_596_800), "0001-01-01T00:00:00Z");
        assert!(!secs_in_range(-62_135_596_801));
    }

    #[test]
    fn values_outside_it_are_shown_as_postgresql_prints_them() {
        assert_eq!(date_text(FIRST_DAY - 1), "0001-12-31 BC");
        assert_eq!(
            date_text(-2_440_588),
            "4714-11-24 BC",
            "Julian day 0, the first date PostgreSQL holds"
        );
        assert_eq!(date_text(2_145_042_905), "5874897-12-31", "the last");
        assert_eq!(timestamp_text(-62_135_596_801, 0), "0001-12-31 23:59:59+00 BC");
        assert_eq!(timestamp_text(568_971_820_800, 0), "20000-01-01 00:00:00+00");
        assert_eq!(timestamp_text(1_700_000_000, 120_000_000), "2023-11-14 22:13:20.12+00");
        // Nothing is too large to show: the extremes of a Parquet timestamp in seconds.
        assert_eq!(timestamp_text(i64::MAX, 0), "292277026596-12-04 15:30:07+00");
        assert_eq!(timestamp_text(i64::MIN, 0), "292277022658-01-27 08:29:52+00 BC");
        assert_eq!(date_text(i64::from(i32::MAX)), "5881580-07-11");
    }
}
