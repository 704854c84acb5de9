//! "Absent" as other programs write it: Go encodes nil slices, maps and
//! pointers as `null`, and many services send `""` for a string they have
//! no value for. Optional fields of every decoder use these, so neither is
//! ever a reason to refuse an answer; required fields stay strict.

use serde::{Deserialize, Deserializer};

/// An optional field: `null` is its default.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An optional string: `null`, `""` and blanks are `None`.
pub fn empty_as_none<'de, D>(d: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
}
