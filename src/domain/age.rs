use super::{ErrorType, Invalid};

/// An age in years, 0–150.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Age(i32);

impl Age {
    pub const MIN: i64 = 0;
    pub const MAX: i64 = 150;

    pub fn parse(value: i64) -> Result<Self, Invalid> {
        Self::check(value)?;
        Ok(Age(value as i32))
    }

    pub fn check(value: i64) -> Result<(), Invalid> {
        if value < Self::MIN {
            return Err(Invalid::new(
                ErrorType::GreaterThanEqual,
                format!("Input should be greater than or equal to {}", Self::MIN),
            ));
        }
        if value > Self::MAX {
            return Err(Invalid::new(
                ErrorType::LessThanEqual,
                format!("Input should be less than or equal to {}", Self::MAX),
            ));
        }
        Ok(())
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_within_bounds_are_accepted() {
        for age in [0, 1, 30, 150] {
            assert_eq!(Age::parse(age).expect("valid").get() as i64, age);
        }
    }

    #[test]
    fn ages_out_of_bounds_are_refused() {
        let cases = [
            (-1, ErrorType::GreaterThanEqual),
            (i64::MIN, ErrorType::GreaterThanEqual),
            (151, ErrorType::LessThanEqual),
            (i64::MAX, ErrorType::LessThanEqual),
        ];
        for (input, kind) in cases {
            assert_eq!(Age::parse(input).expect_err("invalid").kind, kind);
        }
    }
}
