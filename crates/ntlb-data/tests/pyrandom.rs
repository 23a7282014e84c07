//! ntlb's reimplementation of CPython's `random` and of the reference's few-shot draw, held to
//! CPython's own outputs (tests/fixtures/pyrandom.json, written by
//! scripts/make_pyrandom_vectors.py).

use ntlb_data::fewshot::draw_train_val;
use ntlb_data::pyrandom::{sample_takes_pool, PyRandom};
use serde_json::Value;

fn vectors() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pyrandom.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A Python int seed as ntlb takes it (negative seeds: Python seeds with the absolute value).
fn rng(seed: &Value) -> PyRandom {
    match (seed.as_u64(), seed.as_i64()) {
        (Some(s), _) => PyRandom::seed(s),
        (None, Some(s)) => PyRandom::seed_signed(s),
        _ => panic!("seed {seed}"),
    }
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

#[test]
fn getrandbits_and_random_equal_cpython_for_every_seed() {
    let v = vectors();
    let cases = v["bits"].as_array().unwrap();
    assert!(cases.iter().any(|c| c["seed"].as_u64().is_some_and(|s| s >= 1 << 32)));
    for c in cases {
        let mut r = rng(&c["seed"]);
        let u32s: Vec<u64> = (0..8).map(|_| r.getrandbits(32)).collect();
        assert_eq!(u32s, u64s(&c["u32"]), "seed {}", c["seed"]);
        for kv in c["getrandbits"].as_array().unwrap() {
            let k = kv[0].as_u64().unwrap() as u32;
            assert_eq!(r.getrandbits(k), kv[1].as_u64().unwrap(), "seed {} getrandbits({k})", c["seed"]);
        }
        for want in c["random"].as_array().unwrap() {
            let (got, want) = (r.random(), want.as_f64().unwrap());
            assert!(
                (got - want).abs() <= f64::EPSILON * want,
                "seed {}: random() {got} vs {want}",
                c["seed"]
            );
        }
    }
}

#[test]
fn randbelow_equals_cpython() {
    for c in vectors()["randbelow"].as_array().unwrap() {
        let mut r = rng(&c["seed"]);
        for nv in c["calls"].as_array().unwrap() {
            let n = nv[0].as_u64().unwrap();
            assert_eq!(r.randbelow(n), nv[1].as_u64().unwrap(), "seed {} _randbelow({n})", c["seed"]);
        }
    }
}

/// Both code paths of `sample`, k from 1 past 21, at and around CPython's threshold; the
/// stream after the call too (the set path's redraws consume it).
#[test]
fn sample_equals_cpython_on_both_paths() {
    let v = vectors();
    let cases = v["sample"].as_array().unwrap();
    let (mut pool, mut set) = (0, 0);
    for c in cases {
        let (n, k) = (c["n"].as_u64().unwrap() as usize, c["k"].as_u64().unwrap() as usize);
        assert_eq!(sample_takes_pool(n, k), c["pool"].as_bool().unwrap(), "path of sample({n}, {k})");
        if sample_takes_pool(n, k) {
            pool += 1
        } else {
            set += 1
        }
        let mut r = rng(&c["seed"]);
        let got: Vec<u64> = r.sample(n, k).into_iter().map(|i| i as u64).collect();
        assert_eq!(got, u64s(&c["indices"]), "seed {} sample(range({n}), {k})", c["seed"]);
        assert_eq!(r.getrandbits(32), c["next"].as_u64().unwrap(), "stream after sample({n}, {k})");
    }
    assert!(pool > 50 && set > 50, "{pool} pool, {set} set");
    assert!(cases.iter().any(|c| c["k"].as_u64().unwrap() > 21));
    let s = &v["stream"];
    let mut r = rng(&s["seed"]);
    let picks: Vec<u64> = u64s(&s["sizes"]).into_iter().map(|n| r.sample(n as usize, 1)[0] as u64).collect();
    assert_eq!(picks, u64s(&s["picks"]));
}

/// The whole draw over a split list with uneven classes met in unsorted order: train with K,
/// then val with min(K, 4) on the same stream, as Dassl makes it under CPython.
#[test]
fn whole_draws_equal_the_reference_algorithm_under_cpython() {
    let v = vectors();
    let entry = |x: &Value| (x[0].as_str().unwrap().to_string(), x[1].as_u64().unwrap() as usize);
    let train: Vec<(String, usize)> = v["split"]["train"].as_array().unwrap().iter().map(entry).collect();
    let val: Vec<(String, usize)> = v["split"]["val"].as_array().unwrap().iter().map(entry).collect();
    let draws = v["draws"].as_array().unwrap();
    assert!(draws.len() >= 30);
    for d in draws {
        let (seed, shots) = (d["seed"].as_u64().unwrap(), d["shots"].as_u64().unwrap() as usize);
        let (t, va) = draw_train_val(&train, Some(val.as_slice()), |x| x.1, shots, seed).unwrap();
        let names = |l: &[(String, usize)]| l.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        let want = |k: &str| {
            d[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&t), want("train"), "seed {seed}, {shots} shots: train");
        assert_eq!(names(&va), want("val"), "seed {seed}, {shots} shots: val");
    }
}
