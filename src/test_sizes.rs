//! Sizes the tests set in the environment to exercise a mechanism on small data (threads cut
//! into many pieces, files read in many runs). Debug builds only: the integration tests run the
//! debug binary; a release build never reads the variables.

/// The positive number in the environment variable `name`, read once per variable.
#[cfg(debug_assertions)]
pub fn get(name: &'static str) -> Option<u64> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static READ: OnceLock<Mutex<HashMap<&'static str, Option<u64>>>> = OnceLock::new();
    let mut read = READ.get_or_init(Mutex::default).lock().ok()?;
    *read.entry(name).or_insert_with(|| {
        let value = std::env::var(name).ok()?;
        value.parse().ok().filter(|&n| n > 0)
    })
}

#[cfg(not(debug_assertions))]
pub fn get(_name: &'static str) -> Option<u64> {
    None
}
