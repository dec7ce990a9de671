//! Cron schedules (`minute hour day month weekday`, in UTC): parsing with precise errors, and the next time a
//! schedule fires after a given instant. Batch jobs with `cron = "…"` run on these.
//!
//! The syntax is the classic one of Vixie cron: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists
//! `a,b,c`, month names `jan`…`dec` and weekday names `sun`…`sat` (0 and 7 are both Sunday). As in cron, when
//! both the day of the month and the weekday are restricted, a day matches if either matches.

use crate::eval::civil_from_days;
use std::fmt;

/// A parsed cron schedule. Each field is a bit set of the values it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronSchedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// The day-of-month field was not `*`.
    days_restricted: bool,
    /// The weekday field was not `*`.
    weekdays_restricted: bool,
}

/// What is wrong with a cron expression, and in which field (0 = minute … 4 = weekday, `None` for the whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError {
    /// The field at fault (0 = minute … 4 = weekday), or `None` for the whole expression.
    pub field: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(formatter, "{} field: {}", FIELDS[field].name, self.message),
            None => formatter.write_str(&self.message),
        }
    }
}

impl std::error::Error for CronError {}

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec { name: "minute", min: 0, max: 59, names: &[] },
    FieldSpec { name: "hour", min: 0, max: 23, names: &[] },
    FieldSpec { name: "day-of-month", min: 1, max: 31, names: &[] },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    },
    // 7 is accepted as Sunday and folded onto 0 after parsing.
    FieldSpec { name: "weekday", min: 0, max: 7, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

/// How far ahead the next firing is searched: a schedule such as `0 0 30 2 *` (30 February) never fires, and
/// any schedule that can fire does so within a leap-year cycle.
const SEARCH_DAYS: i64 = 4 * 366 + 1;

impl CronSchedule {
    /// Parses a five-field cron expression (`minute hour day-of-month month weekday`).
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError {
                field: None,
                message: format!("a cron schedule has 5 fields (minute hour day month weekday), found {}", parts.len()),
            });
        }
        let mut sets = [0u64; 5];
        for (index, part) in parts.iter().enumerate() {
            sets[index] =
                parse_field(part, &FIELDS[index]).map_err(|message| CronError { field: Some(index), message })?;
        }
        let mut weekdays = sets[4];
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        let schedule = CronSchedule {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays,
            days_restricted: parts[2] != "*",
            weekdays_restricted: parts[4] != "*",
        };
        if schedule.next_after(0).is_none() {
            return Err(CronError { field: None, message: "it never fires: no month has the days it names".into() });
        }
        Ok(schedule)
    }

    /// The first instant strictly after `after_seconds` (Unix seconds, UTC) at which the schedule fires, on a
    /// whole minute; `None` if it never fires.
    pub fn next_after(&self, after_seconds: i64) -> Option<i64> {
        let start_minute = after_seconds.div_euclid(60) + 1;
        let first_day = start_minute.div_euclid(1440);
        (first_day..first_day + SEARCH_DAYS).filter(|day| self.day_matches(*day)).find_map(|day| {
            let from = if day == first_day { start_minute.rem_euclid(1440) } else { 0 };
            self.first_minute_from(from).map(|minute| (day * 1440 + minute) * 60)
        })
    }

    fn day_matches(&self, day: i64) -> bool {
        let (_, month, day_of_month) = civil_from_days(day);
        if !has(self.months, month) {
            return false;
        }
        // 1970-01-01 was a Thursday (4).
        let weekday = (day + 4).rem_euclid(7) as u32;
        let by_day = has(self.days, day_of_month);
        let by_weekday = has(self.weekdays, weekday);
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => by_day || by_weekday,
            (true, false) => by_day,
            (false, true) => by_weekday,
            (false, false) => true,
        }
    }

    fn first_minute_from(&self, minute_of_day: i64) -> Option<i64> {
        (minute_of_day..1440)
            .find(|minute| has(self.hours, (minute / 60) as u32) && has(self.minutes, (minute % 60) as u32))
    }
}

fn has(set: u64, value: u32) -> bool {
    set & (1 << value) != 0
}

fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step.parse().map_err(|_| format!("`{step}` is not a step (a whole number)"))?;
                if step == 0 {
                    return Err("a step of 0 never advances".into());
                }
                (range, step)
            }
            None => (item, 1),
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((low, high)) = range.split_once('-') {
            (value(low, spec)?, value(high, spec)?)
        } else {
            let low = value(range, spec)?;
            // `5/15` means from 5 to the end in steps of 15, as in Vixie cron.
            (low, if item.contains('/') { spec.max } else { low })
        };
        if low > high {
            return Err(format!("the range `{range}` runs backwards"));
        }
        let mut current = low;
        while current <= high {
            set |= 1 << current;
            current += step;
        }
    }
    Ok(set)
}

fn value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    if let Some(position) = spec.names.iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(position as u32 + if spec.min == 1 { 1 } else { 0 });
    }
    let number: u32 = text.parse().map_err(|_| {
        if spec.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!("`{text}` is not a number or one of {}", spec.names.join(", "))
        }
    })?;
    if number < spec.min || number > spec.max {
        return Err(format!("{number} is outside {}–{}", spec.min, spec.max));
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::days_from_civil;

    fn at(year: i64, month: u32, day: u32, hour: i64, minute: i64) -> i64 {
        (days_from_civil(year, month, day) * 1440 + hour * 60 + minute) * 60
    }

    fn next(expression: &str, after: i64) -> i64 {
        CronSchedule::parse(expression).unwrap().next_after(after).unwrap()
    }

    #[test]
    fn every_hour_on_the_hour() {
        assert_eq!(next("0 * * * *", at(2026, 11, 28, 18, 51)), at(2026, 11, 28, 19, 0));
        // Strictly after: at 19:00 exactly the next one is 20:00.
        assert_eq!(next("0 * * * *", at(2026, 11, 28, 19, 0)), at(2026, 11, 28, 20, 0));
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        assert_eq!(next("*/15 * * * *", at(2026, 1, 1, 0, 1)), at(2026, 1, 1, 0, 15));
        assert_eq!(next("30 9-17/4 * * *", at(2026, 1, 1, 14, 0)), at(2026, 1, 1, 17, 30));
        assert_eq!(next("0 0 1 jan,jul *", at(2026, 2, 1, 0, 0)), at(2026, 7, 1, 0, 0));
        // 2026-11-28 is a Saturday; the next Monday is the 30th.
        assert_eq!(next("0 8 * * mon", at(2026, 11, 28, 12, 0)), at(2026, 11, 30, 8, 0));
        assert_eq!(next("0 8 * * 7", at(2026, 11, 28, 12, 0)), at(2026, 11, 29, 8, 0));
    }

    #[test]
    fn day_of_month_and_weekday_together_match_either() {
        // The 1st of the month or any Sunday: after Saturday 2026-11-28, Sunday the 29th comes first.
        assert_eq!(next("0 0 1 * sun", at(2026, 11, 28, 0, 0)), at(2026, 11, 29, 0, 0));
    }

    #[test]
    fn leap_days_are_found_and_impossible_days_refused() {
        assert_eq!(next("0 0 29 2 *", at(2026, 3, 1, 0, 0)), at(2028, 2, 29, 0, 0));
        let error = CronSchedule::parse("0 0 30 2 *").unwrap_err();
        assert!(error.message.contains("never fires"), "{error}");
    }

    #[test]
    fn errors_name_the_field() {
        let error = CronSchedule::parse("0 25 * * *").unwrap_err();
        assert_eq!(error.to_string(), "hour field: 25 is outside 0–23");
        assert_eq!(CronSchedule::parse("0 * * * * *").unwrap_err().field, None);
        assert_eq!(
            CronSchedule::parse("*/0 * * * *").unwrap_err().to_string(),
            "minute field: a step of 0 never advances"
        );
        assert!(CronSchedule::parse("0 0 * foo *").unwrap_err().to_string().contains("jan"));
        assert!(CronSchedule::parse("0 5-2 * * *").unwrap_err().to_string().contains("backwards"));
    }

    proptest::proptest! {
        #[test]
        fn the_next_firing_matches_and_nothing_between_does(
            minute in 0u32..60, hour_step in 1u32..12, weekday in 0u32..7, after in 0i64..4_000_000_000,
        ) {
            let schedule = CronSchedule::parse(&format!("{minute} */{hour_step} * * {weekday}")).unwrap();
            let fired = schedule.next_after(after).unwrap();
            proptest::prop_assert!(fired > after && fired - after <= 8 * 86_400);
            proptest::prop_assert_eq!(fired % 60, 0);
            let mut probe = (after.div_euclid(60) + 1) * 60;
            while probe < fired {
                let minute_index = probe / 60;
                let day = minute_index.div_euclid(1440);
                let of_day = minute_index.rem_euclid(1440);
                let matches = schedule.day_matches(day) && schedule.first_minute_from(of_day) == Some(of_day);
                proptest::prop_assert!(!matches, "{probe} matches before {fired}");
                probe += 60;
            }
        }
    }
}
