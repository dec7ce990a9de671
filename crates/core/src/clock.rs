//! The application's clock: what time it is for the application, which `stratum up --speed N` runs N times faster
//! than the wall clock so that a day of traffic (and its hourly batches and daily retrains) fits in minutes. On
//! real machines the scale is 1 and the application's time is the wall clock's.
//!
//! Pure: callers pass the wall-clock time in (Unix seconds); the clock only converts.

/// An application clock that agrees with the wall clock at `origin` and runs `scale` times faster from there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppClock {
    /// When both clocks read the same, in Unix seconds.
    pub origin: f64,
    /// How many seconds of the application's time pass in one second of the wall clock's.
    pub scale: f64,
}

impl AppClock {
    /// A clock started at `origin` (Unix seconds) running `scale` times faster than the wall clock; a scale that
    /// is not a positive number is taken as 1.
    pub fn new(origin: f64, scale: f64) -> AppClock {
        let scale = if scale.is_finite() && scale > 0.0 { scale } else { 1.0 };
        AppClock { origin, scale }
    }

    /// The application's time when the wall clock reads `wall`.
    pub fn app_time(&self, wall: f64) -> f64 {
        self.origin + (wall - self.origin) * self.scale
    }

    /// The wall clock's time when the application's reads `app`.
    pub fn wall_time(&self, app: f64) -> f64 {
        self.origin + (app - self.origin) / self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_at_speed_1440_takes_two_and_a_half_seconds() {
        let clock = AppClock::new(1_000.0, 1440.0);
        assert_eq!(clock.app_time(1_000.0), 1_000.0);
        assert_eq!(clock.app_time(1_002.5), 1_000.0 + 3_600.0);
        assert_eq!(clock.wall_time(1_000.0 + 86_400.0), 1_060.0);
        assert_eq!(clock.wall_time(clock.app_time(1_234.5)), 1_234.5);
    }

    #[test]
    fn a_scale_that_is_not_a_positive_number_is_the_wall_clock() {
        for scale in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(AppClock::new(10.0, scale).app_time(20.0), 20.0);
        }
    }
}
