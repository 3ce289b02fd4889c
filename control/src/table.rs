//! One kind of record in a [`Snapshot`](super::Snapshot): sorted by id, shared between
//! snapshots. A write that finds the snapshot still held by a reader (a request being answered,
//! a placement being decided) copies it; with tables that copy is a reference count per kind,
//! and only the kinds the write changes copy their list of pointers — never the records
//! themselves. (Snapshots once held plain vectors: a write racing any reader deep-copied every
//! record of every kind, under the write lock.)

use std::sync::Arc;

use crate::store::Record;

pub struct Table<T>(Arc<Vec<Arc<T>>>);

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T> Table<T> {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> Iter<'_, T> {
        self.0.iter().map(|record| &**record)
    }

    /// The records, copied out (for the few callers that want a slice of their own).
    pub fn to_vec(&self) -> Vec<T>
    where
        T: Clone,
    {
        self.iter().cloned().collect()
    }

    /// Adds a record at the end, without keeping the order (scratch snapshots only).
    pub fn push(&mut self, record: T) {
        Arc::make_mut(&mut self.0).push(Arc::new(record));
    }
}

impl<T: Record> Table<T> {
    /// Where the record with `id` is, or would be.
    pub fn position(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|r| r.id().cmp(id))
    }

    pub fn find(&self, id: &str) -> Option<&T> {
        self.position(id).ok().map(|i| &*self.0[i])
    }

    /// Inserts or replaces the record with its id; returns the one replaced.
    pub fn upsert(&mut self, record: T) -> Option<Arc<T>> {
        let position = self.position(record.id());
        let records = Arc::make_mut(&mut self.0);
        match position {
            Ok(i) => Some(std::mem::replace(&mut records[i], Arc::new(record))),
            Err(i) => {
                records.insert(i, Arc::new(record));
                None
            }
        }
    }

    /// Removes the record with `id`; returns it.
    pub fn remove(&mut self, id: &str) -> Option<Arc<T>> {
        let i = self.position(id).ok()?;
        Some(Arc::make_mut(&mut self.0).remove(i))
    }
}

pub type Iter<'a, T> = std::iter::Map<std::slice::Iter<'a, Arc<T>>, fn(&'a Arc<T>) -> &'a T>;

impl<'a, T> IntoIterator for &'a Table<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T> std::ops::Index<usize> for Table<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.0[i]
    }
}

/// Records in id order (as the store lists them).
impl<T> From<Vec<T>> for Table<T> {
    fn from(records: Vec<T>) -> Self {
        Self(Arc::new(records.into_iter().map(Arc::new).collect()))
    }
}
