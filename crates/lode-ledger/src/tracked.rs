//! A `BTreeMap` that journals every write, so that the state can
//! * roll back a failed entry or block (all-or-nothing), and
//! * update its LtHash commitment from exactly the items that changed.
//!
//! Every mutation goes through [`TrackedMap::insert`] / [`TrackedMap::remove`],
//! so no change can escape the commitment.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::ops::RangeBounds;

#[derive(Debug, Clone)]
pub(crate) struct TrackedMap<K, V> {
    map: BTreeMap<K, V>,
    /// (key, value before the write), oldest first, since the last commit.
    journal: Vec<(K, Option<V>)>,
    /// Bumped on every mutation and rollback (cache invalidation).
    version: u64,
}

impl<K, V> Default for TrackedMap<K, V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            journal: Vec::new(),
            version: 0,
        }
    }
}

impl<K: Ord + Clone, V: Clone + PartialEq> TrackedMap<K, V> {
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> btree_map::Iter<'_, K, V> {
        self.map.iter()
    }

    pub fn range<R: RangeBounds<K>>(&self, r: R) -> btree_map::Range<'_, K, V> {
        self.map.range(r)
    }

    #[cfg(test)]
    pub fn inner(&self) -> &BTreeMap<K, V> {
        &self.map
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn insert(&mut self, k: K, v: V) {
        let old = self.map.insert(k.clone(), v);
        self.journal.push((k, old));
        self.version = self.version.wrapping_add(1);
    }

    pub fn remove(&mut self, k: &K) -> Option<V> {
        let old = self.map.remove(k)?;
        self.journal.push((k.clone(), Some(old.clone())));
        self.version = self.version.wrapping_add(1);
        Some(old)
    }

    /// Current journal position.
    pub fn mark(&self) -> usize {
        self.journal.len()
    }

    /// Undoes every write after `mark`.
    pub fn rollback(&mut self, mark: usize) {
        if self.journal.len() > mark {
            self.version = self.version.wrapping_add(1);
        }
        while self.journal.len() > mark {
            let Some((k, old)) = self.journal.pop() else {
                break;
            };
            match old {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }

    /// Keys written since the last commit whose value differs from the value
    /// at the last commit, each with that old value (`None`: did not exist).
    /// Does not clear the journal.
    pub fn changes(&self) -> Vec<(K, Option<V>)> {
        let mut first: BTreeMap<&K, &Option<V>> = BTreeMap::new();
        for (k, old) in &self.journal {
            first.entry(k).or_insert(old);
        }
        first
            .into_iter()
            .filter(|(k, old)| self.map.get(*k) != old.as_ref())
            .map(|(k, old)| (k.clone(), old.clone()))
            .collect()
    }

    /// Forgets the journal: the current contents become the committed state.
    pub fn commit(&mut self) {
        self.journal.clear();
    }
}

impl<K: Serialize, V: Serialize> Serialize for TrackedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for TrackedMap<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self {
            map: BTreeMap::deserialize(d)?,
            journal: Vec::new(),
            version: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_and_changes() {
        let mut m: TrackedMap<u32, u32> = TrackedMap::default();
        m.insert(1, 10);
        m.insert(2, 20);
        m.commit();
        let mark = m.mark();
        m.insert(1, 11);
        m.insert(1, 12);
        m.remove(&2);
        m.insert(3, 30);
        m.insert(4, 40);
        m.remove(&4);
        let ch = m.changes();
        assert_eq!(ch, vec![(1, Some(10)), (2, Some(20)), (3, None)]);
        m.rollback(mark);
        assert_eq!(m.inner().clone(), BTreeMap::from([(1, 10), (2, 20)]));
        assert!(m.changes().is_empty());
    }
}
