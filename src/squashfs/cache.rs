//! A small least-recently-used cache of decoded blocks, keyed by their
//! position in the image. Values are shared (`Rc`), so a caller keeps a
//! block it is reading from even if the cache drops it meanwhile.

use std::collections::HashMap;
use std::rc::Rc;

/// At most `capacity` values; inserting into a full cache drops the one
/// used longest ago.
pub struct Lru<T> {
    map: HashMap<u64, (Rc<T>, u64)>,
    capacity: usize,
    clock: u64,
}

impl<T> Lru<T> {
    pub fn new(capacity: usize) -> Lru<T> {
        Lru {
            map: HashMap::with_capacity(capacity),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// The value at `key`, now the most recently used.
    pub fn get(&mut self, key: u64) -> Option<Rc<T>> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(&key).map(|(v, used)| {
            *used = clock;
            Rc::clone(v)
        })
    }

    /// Keep `value` at `key`, dropping the least recently used value if
    /// the cache is full.
    pub fn insert(&mut self, key: u64, value: Rc<T>) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            // A scan, but only once the cache is full, and the caches are
            // small next to the decompression each miss costs.
            if let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                self.map.remove(&oldest);
            }
        }
        self.clock += 1;
        self.map.insert(key, (value, self.clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first() {
        let mut c = Lru::new(2);
        c.insert(1, Rc::new("a"));
        c.insert(2, Rc::new("b"));
        assert_eq!(c.get(1).as_deref(), Some(&"a"));
        c.insert(3, Rc::new("c"));
        assert!(c.get(2).is_none());
        assert_eq!(c.get(1).as_deref(), Some(&"a"));
        assert_eq!(c.get(3).as_deref(), Some(&"c"));
    }
}
