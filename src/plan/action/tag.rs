//! The `action` tag of an action, as its `Serialize` writes it. serde's derive for an
//! internally tagged enum opens a struct and writes the tag as its first field
//! (`serialize_struct`, then `serialize_field("action", "<name>")`); [`TagReader`] records
//! that field's value and stops there.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;

use serde::ser::{self, Impossible, Serialize};

use super::Action;

/// The names seen so far: finitely many (one per variant), so each is leaked once and
/// [`Action::name`] can hand out `&'static str`.
static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// The action's `action` tag, as its JSON carries it.
pub(super) fn of(action: &Action) -> &'static str {
    let mut reader = TagReader::default();
    // The reader stops the serialization as soon as it has the tag (an error by design).
    let _ = action.serialize(&mut reader);
    let name = reader
        .name
        .expect("every action serializes with an `action` tag");
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.get(name.as_str()) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A serializer that accepts a struct and, of it, reads the `action` field's string.
#[derive(Default)]
struct TagReader {
    /// Inside the `action` field: the next string is the tag.
    in_tag: bool,
    name: Option<String>,
}

/// Why the reader stopped: it found the tag, or met something an action never is.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stopped reading the action tag")
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// The `Serializer` methods an action's tag never calls: each stops the reader.
macro_rules! stop {
    ($($name:ident($($arg:ty),*) -> $ret:ty;)*) => {
        $(fn $name(self, $(_: $arg),*) -> Result<$ret, Stop> {
            Err(Stop)
        })*
    };
}

impl ser::Serializer for &mut TagReader {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Impossible<(), Stop>;
    type SerializeTuple = Impossible<(), Stop>;
    type SerializeTupleStruct = Impossible<(), Stop>;
    type SerializeTupleVariant = Impossible<(), Stop>;
    type SerializeMap = Impossible<(), Stop>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Stop>;

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Stop> {
        Ok(self)
    }

    fn serialize_str(self, v: &str) -> Result<(), Stop> {
        if !self.in_tag {
            return Err(Stop);
        }
        self.name = Some(v.to_string());
        Ok(())
    }

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<(), Stop> {
        Err(Stop)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Stop> {
        Err(Stop)
    }

    stop! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> ();
        serialize_i16(i16) -> ();
        serialize_i32(i32) -> ();
        serialize_i64(i64) -> ();
        serialize_u8(u8) -> ();
        serialize_u16(u16) -> ();
        serialize_u32(u32) -> ();
        serialize_u64(u64) -> ();
        serialize_f32(f32) -> ();
        serialize_f64(f64) -> ();
        serialize_char(char) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
}

impl ser::SerializeStruct for &mut TagReader {
    type Ok = ();
    type Error = Stop;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        if key != "action" {
            return Ok(()); // the payload: not read
        }
        self.in_tag = true;
        value.serialize(&mut **self)?;
        // Found: the rest of the action is not serialized.
        Err(Stop)
    }

    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}
