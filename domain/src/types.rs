//! The enumerations stored in the database live with the entities; re-exported here so
//! domain code names them as its own types.

pub use entity::values::*;
