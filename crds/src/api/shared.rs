//! [`Shared`]: one copy of a value that many objects hold, such as an IP set or a compiled policy
//! that the operator puts in thousands of NodeNetworks.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value behind an [`Arc`]: cloning it shares the value instead of copying it. It serializes,
/// deserializes, compares and has the schema of the value itself, so it changes nothing on the
/// wire. Mutable access copies the value first if it is shared (copy on write).
#[derive(Clone, Debug, Default)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }

    /// Whether both hold the very same copy (then they are equal without comparing).
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Self::ptr_eq(self, other) || *self.0 == *other.0
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

impl<T: JsonSchema> JsonSchema for Shared<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn it_is_the_value_on_the_wire_and_in_the_schema() {
        let shared = Shared::new(vec!["a".to_string()]);
        let json = serde_json::to_string(&shared).unwrap();
        assert_eq!(json, r#"["a"]"#);
        assert_eq!(serde_json::from_str::<Shared<Vec<String>>>(&json).unwrap(), shared);
        let schema = |s: schemars::Schema| serde_json::to_value(s).unwrap();
        assert_eq!(schema(schemars::schema_for!(Shared<Vec<String>>)), schema(schemars::schema_for!(Vec<String>)));
    }

    #[test]
    fn clones_share_and_writes_copy() {
        let a = Shared::new(vec![1]);
        let mut b = a.clone();
        assert!(Shared::ptr_eq(&a, &b));
        b.push(2);
        assert!(!Shared::ptr_eq(&a, &b));
        assert_eq!((*a).clone(), vec![1]);
        assert_eq!((*b).clone(), vec![1, 2]);
    }
}
