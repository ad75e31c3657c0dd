//! A least-recently-used map bounded by the summed weight (estimated bytes)
//! of its values, for the process-wide caches of searches: what a search
//! derives from a snapshot, and decoded columns of data files. Their keys
//! name immutable things (a snapshot's files, a data file's column), so an
//! entry can only become unused, never wrong.

use std::hash::Hash;
use std::sync::Mutex;

use lru::LruCache;

pub(crate) struct WeightedLru<K: Hash + Eq, V> {
    capacity: usize,
    state: Mutex<State<K, V>>,
}

struct State<K: Hash + Eq, V> {
    map: LruCache<K, (V, usize)>,
    weight: usize,
}

impl<K: Hash + Eq, V: Clone> WeightedLru<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        WeightedLru {
            capacity,
            state: Mutex::new(State {
                map: LruCache::unbounded(),
                weight: 0,
            }),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map is still consistent (every update is one call).
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.map.get(key).map(|(v, _)| v.clone())
    }

    /// Keeps `value`, evicting the least recently used beyond the capacity;
    /// a value of more than a quarter of the capacity is not kept.
    pub(crate) fn insert(&self, key: K, value: V, weight: usize) {
        if weight > self.capacity / 4 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, old)) = state.map.put(key, (value, weight)) {
            state.weight -= old;
        }
        state.weight += weight;
        while state.weight > self.capacity {
            match state.map.pop_lru() {
                Some((_, (_, w))) => state.weight -= w,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_beyond_capacity() {
        let cache = WeightedLru::new(100);
        cache.insert(1, "a", 20);
        cache.insert(2, "b", 20);
        assert_eq!(cache.get(&1), Some("a"));
        cache.insert(3, "c", 25);
        cache.insert(4, "d", 25);
        cache.insert(5, "e", 20);
        // 110 > 100: the least recently used (2) goes.
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&1), Some("a"));
        // Too big for one entry.
        cache.insert(6, "f", 26);
        assert_eq!(cache.get(&6), None);
    }
}
