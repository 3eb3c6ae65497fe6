//! The CMS CDR wire format: `parse(&[u8]) -> Batch` of typed records (pure, no state).

mod parse;
mod types;

pub use parse::{
    parse, parse_bool, parse_f64, parse_time, parse_u64, ParseError, MAX_DEPTH, MAX_NUMBER,
};
pub use types::*;
