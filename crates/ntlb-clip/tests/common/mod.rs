//! What the integration tests of this crate share: the golden folder, golden cases, and the
//! fixture sets written by `scripts/make_*_fixtures.py` (features a reference library computed
//! on the golden tiny CLIP's weights, with the config files it read).
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use ntlb_clip::preprocess::load_image;
use ntlb_clip::Clip;
use ntlb_golden::clip_cases::compute_clip_case;
use ntlb_golden::compare::{compare, FieldCheck};
use serde_json::Value;

/// `../shared/golden` (or `$NTLB_GOLDEN`); `None` with a loud message when it is absent.
pub fn golden_dir(test: &str) -> Option<PathBuf> {
    ntlb_golden::fixtures::golden_dir_or_skip(test)
}

pub fn read_case(dir: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join(name)).expect("golden case readable");
    serde_json::from_str(&text).expect("golden case is JSON")
}

/// A JSON file, panicking with its path.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Hugging Face folder: the golden hf/ weights and tokenizer with `config` as config.json.
pub fn hf_folder(golden: &Path, config: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(golden.join("tiny-clip/hf").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("config.json"), serde_json::to_string_pretty(config).unwrap()).unwrap();
    dir
}

/// An open_clip hub layout: the golden OpenAI-named weights as open_clip_model.safetensors with
/// `config` as open_clip_config.json beside them. Returns the folder and the weights' path.
pub fn open_clip_folder(golden: &Path, config: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("open_clip_model.safetensors");
    std::fs::copy(golden.join("tiny-clip/openai.safetensors"), &weights).unwrap();
    std::fs::write(
        dir.path().join("open_clip_config.json"),
        serde_json::to_string_pretty(config).unwrap(),
    )
    .unwrap();
    (dir, weights)
}

/// A model from `path`, panicking with the path and the error.
pub fn load(path: &Path) -> Clip {
    Clip::load(path, None, &Device::flex()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The error of decoding `path` (`what` names it if it decodes), which must name the file.
pub fn expect_decode_error(path: &Path, what: &str) -> String {
    match load_image(path, 32) {
        Ok(_) => panic!("{what} decoded without an error"),
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains(&path.file_name().unwrap().to_string_lossy().to_string()), "{what}: {e}");
            e
        }
    }
}

/// The golden cases every fixture set recomputes, as `{prefix}_{case}.json`.
const CASES: [&str; 2] = ["encode_text", "encode_image"];

/// One fixture set: `tests/fixtures/<dir>/`, written by `script`; `what` names the setting the
/// set checks, in the message of a model that could not tell it.
pub struct FixtureSet {
    pub dir: &'static str,
    pub script: &'static str,
    pub what: &'static str,
}

impl FixtureSet {
    pub fn path(&self, name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.dir)
            .join(name)
    }

    /// The fixture with the golden case's inputs put back (the fixture names the case and its
    /// digest instead of copying them).
    pub fn case(&self, name: &str, golden: &Path) -> Value {
        let mut case = read_json(&self.path(name));
        let source = case["inputs"]["golden_case"].as_str().expect("inputs.golden_case").to_string();
        let digest = ntlb_core::digest::sha256_file(&golden.join(&source)).unwrap();
        assert_eq!(
            case["inputs"]["golden_sha256"].as_str(),
            Some(digest.as_str()),
            "{name} was made from another {source}: rerun {}",
            self.script
        );
        case["inputs"] = read_json(&golden.join(&source))["inputs"].clone();
        case
    }

    /// Our outputs for `{prefix}_{case}.json`, compared field by field at the golden
    /// tolerances; every output of the fixture must have been compared.
    pub fn checks(&self, clip: &Clip, prefix: &str, golden: &Path) -> Vec<(String, FieldCheck)> {
        let device = Device::flex();
        let mut all = Vec::new();
        for case_name in CASES {
            let name = format!("{prefix}_{case_name}.json");
            let case = self.case(&name, golden);
            let ours = compute_clip_case(&case, clip, None, &device).unwrap().expect("case is covered");
            let checks = compare(case["experiment"].as_str().unwrap(), &ours, &case["outputs"], "");
            for field in case["outputs"].as_object().unwrap().keys() {
                assert!(checks.iter().any(|c| c.field == *field), "{name}: `{field}` not compared");
            }
            all.extend(checks.into_iter().map(|c| (name.clone(), c)));
        }
        all
    }

    pub fn assert_matches(&self, label: &str, clip: &Clip, prefix: &str, golden: &Path) {
        for (name, c) in self.checks(clip, prefix, golden) {
            eprintln!(
                "{label} vs {name} {}: max abs {:.3e}, rel {:.3e} (tol {:.0e})",
                c.field, c.deviation.max_abs, c.deviation.rel, c.tolerance
            );
            assert!(c.ok(), "{label} vs {name}: {} off: {:?}", c.field, c.deviation);
        }
    }

    /// A model that computes the other way misses every field by at least 100x the tolerance.
    pub fn assert_misses(&self, label: &str, clip: &Clip, prefix: &str, golden: &Path) {
        for (name, c) in self.checks(clip, prefix, golden) {
            eprintln!(
                "{label} vs {name} {} (must miss): max abs {:.3e}, rel {:.3e} = {:.0}x the tolerance {:.0e}",
                c.field,
                c.deviation.max_abs,
                c.deviation.rel,
                c.deviation.rel / c.tolerance,
                c.tolerance
            );
            assert!(
                c.deviation.rel > 100.0 * c.tolerance,
                "{label} comes within 100x the tolerance of {name} {}: {:?}: the {} check could not tell",
                c.field,
                c.deviation,
                self.what
            );
        }
    }
}
