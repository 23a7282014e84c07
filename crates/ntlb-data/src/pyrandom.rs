//! CPython's `random` module, the few calls the reference's few-shot draw makes: the Mersenne
//! Twister seeded from an int (`random.seed(int)`), `getrandbits`, `_randbelow` and `sample`
//! with both of its code paths. Outputs equal CPython's bit for bit (3.6 to 3.13 agree on
//! these calls), checked against vectors CPython itself wrote
//! (`scripts/make_pyrandom_vectors.py`).

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// The generator state of a `random.Random` instance.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; N],
    index: usize,
}

impl std::fmt::Debug for PyRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyRandom {{ index: {} }}", self.index)
    }
}

impl PyRandom {
    /// `random.seed(seed)` for an int: the key is the 32-bit words of its absolute value, least
    /// significant first (one word `0` for zero), as `_randommodule.c` builds it.
    pub fn seed(seed: u64) -> PyRandom {
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        PyRandom::from_key(&key)
    }

    /// `random.seed` of a signed int: Python seeds with its absolute value.
    pub fn seed_signed(seed: i64) -> PyRandom {
        PyRandom::seed(seed.unsigned_abs())
    }

    /// The state `init_by_array(key)` makes.
    pub fn from_key(key: &[u32]) -> PyRandom {
        let mut r = PyRandom::init_genrand(19_650_218);
        let mt = &mut r.mt;
        let (mut i, mut j) = (1usize, 0usize);
        let len = key.len().max(1);
        let word = |j: usize| key.get(j).copied().unwrap_or(0);
        for _ in 0..N.max(len) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(word(j))
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= len {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        r
    }

    fn init_genrand(s: u32) -> PyRandom {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        PyRandom { mt, index: N }
    }

    fn twist(&mut self) {
        let mt = &mut self.mt;
        let mag = |y: u32| if y & 1 == 0 { 0 } else { MATRIX_A };
        for k in 0..N - M {
            let y = (mt[k] & UPPER_MASK) | (mt[k + 1] & LOWER_MASK);
            mt[k] = mt[k + M] ^ (y >> 1) ^ mag(y);
        }
        for k in N - M..N - 1 {
            let y = (mt[k] & UPPER_MASK) | (mt[k + 1] & LOWER_MASK);
            mt[k] = mt[k + M - N] ^ (y >> 1) ^ mag(y);
        }
        let y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
        mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag(y);
        self.index = 0;
    }

    /// `genrand_uint32`: the next tempered 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k <= 64`: one output per 32-bit word, least significant word
    /// first, the last (most significant) word keeping its top `k mod 32` bits.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        assert!(k <= 64, "getrandbits({k}): at most 64 bits here");
        if k == 0 {
            return 0;
        }
        let mut out = 0u64;
        let mut left = k;
        let mut shift = 0;
        while left > 0 {
            let mut r = self.next_u32();
            if left < 32 {
                r >>= 32 - left;
            }
            out |= (r as u64) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        out
    }

    /// `random()`: a float in [0, 1) from 53 bits of two outputs.
    pub fn random(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `_randbelow(n)` (`_randbelow_with_getrandbits`): `getrandbits(n.bit_length())`, drawn
    /// again while it is `>= n`. `n` must be positive.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        assert!(n > 0, "_randbelow(0)");
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random.sample(range(n), k)`: `k` distinct indices into a population of `n`, in
    /// selection order. A small population takes the pool path (a list swapped from the end),
    /// a large one the set path (indices drawn again while already selected); which one is
    /// [`sample_takes_pool`]'s rule, as CPython decides it.
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population ({k} > {n})");
        let mut out = Vec::with_capacity(k);
        if sample_takes_pool(n, k) {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                out.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                out.push(j);
            }
        }
        out
    }
}

/// Whether `sample` of `k` from `n` takes the pool path: `n <= setsize`, with
/// `setsize = 21 + 4 ** ceil(log(3k, 4))` for `k > 5` (21 otherwise). `3k` is never a power of
/// 4, so the ceiling is the smallest `p` with `4^p > 3k`, computed here in integers.
pub fn sample_takes_pool(n: usize, k: usize) -> bool {
    let mut setsize: u128 = 21;
    if k > 5 {
        let mut p: u128 = 1;
        while p <= 3 * k as u128 {
            p *= 4;
        }
        setsize += p;
    }
    (n as u128) <= setsize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values CPython prints for these calls (the same on 3.6 to 3.13).
    #[test]
    fn known_cpython_outputs() {
        let mut r = PyRandom::seed(1);
        let v: Vec<u64> = (0..5).map(|_| r.getrandbits(32)).collect();
        assert_eq!(v, [577090037, 2444712010, 3639700191, 3445702192, 3280387012]);
        assert_eq!(PyRandom::seed(1).random(), 0.13436424411240122);
        assert_eq!(PyRandom::seed(1).getrandbits(40), 623347347957);
        let mut r = PyRandom::seed((1 << 40) + 5);
        assert_eq!([r.next_u32(), r.next_u32()], [2166296868, 2220160828]);
        assert_eq!(
            PyRandom::seed(1).sample(100, 16),
            [17, 72, 97, 8, 32, 15, 63, 57, 60, 83, 48, 26, 12, 62, 3, 49]
        );
        assert_eq!(
            PyRandom::seed(1).sample(50, 16),
            [8, 36, 4, 16, 7, 31, 28, 30, 41, 24, 13, 6, 44, 1, 40, 27]
        );
    }

    #[test]
    fn setsize_thresholds() {
        assert!(sample_takes_pool(21, 5) && !sample_takes_pool(22, 5));
        assert!(sample_takes_pool(85, 6) && !sample_takes_pool(86, 6));
        assert!(sample_takes_pool(85, 21) && !sample_takes_pool(86, 21));
        assert!(sample_takes_pool(277, 22) && !sample_takes_pool(278, 22));
    }
}
