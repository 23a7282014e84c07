//! Models by name from a Hugging Face cache laid out as `huggingface_hub` writes it (blobs,
//! snapshots of symlinks, refs), built here in a tempdir from the committed tiny models.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::hub::{resolve_in, HubEnv, HubError};
use ntlb_clip::tokenizer::ClipTokenizer;
use ntlb_clip::Clip;

const MAIN: &str = "0123456789abcdef0123456789abcdef01234567";
const V2: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn synth_clip() -> PathBuf {
    repo_root().join("models/synth-clip")
}

fn pytorch_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch").join(name)
}

/// Add the snapshot `commit` of `repo` to the cache at `root`: each (name, source file) is a
/// blob, linked from `snapshots/<commit>/<name>` by a relative symlink; `refs/<r>` for each ref.
fn add_snapshot(root: &Path, repo: &str, commit: &str, refs: &[&str], files: &[(&str, PathBuf)]) -> PathBuf {
    let repo_dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let snap = repo_dir.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo_dir.join("blobs")).unwrap();
    for (name, src) in files {
        // Blobs are named by content hash in the real cache; any unique name will do here.
        let blob = format!("{commit}-{}", name.replace('/', "_"));
        std::fs::copy(src, repo_dir.join("blobs").join(&blob)).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{blob}"), snap.join(name)).unwrap();
    }
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    for r in refs {
        std::fs::write(repo_dir.join("refs").join(r), commit).unwrap();
    }
    snap
}

fn synth_files() -> Vec<(&'static str, PathBuf)> {
    ["config.json", "model.safetensors", "tokenizer.json"]
        .into_iter()
        .map(|f| (f, synth_clip().join(f)))
        .collect()
}

fn cache_env(root: &Path) -> HubEnv {
    HubEnv {
        hf_hub_cache: Some(root.into()),
        home: Some(OsString::from("/nonexistent-home")),
        ..HubEnv::default()
    }
}

/// Image and text features on fixed inputs.
fn features(path: &Path) -> (Vec<f32>, Vec<f32>) {
    let device = Device::flex();
    let clip = Clip::load(path, None, &device).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = clip.config.vision.image_resolution();
    let pixels: Vec<f32> = (0..3 * n * n).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let img = clip.encode_image(Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, n, n]), &device));
    let ctx = clip.config.text.context_length;
    let ids: Vec<u32> = (0..ctx).map(|i| [5, 11, 17, 40][i.min(3)] * u32::from(i < 4)).collect();
    let txt = clip.encode_text(&[ids], &[3]);
    (
        img.into_data().try_to_vec::<f32>().unwrap(),
        txt.into_data().try_to_vec::<f32>().unwrap(),
    )
}

fn err(r: Result<PathBuf, HubError>) -> String {
    match r {
        Ok(p) => panic!("resolved to {} but should fail", p.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_name_resolves_to_its_snapshot_and_loads_as_the_folder() {
    let cache = tempfile::tempdir().unwrap();
    let snap = add_snapshot(cache.path(), "ntlb/synth-clip", MAIN, &["main"], &synth_files());
    let env = cache_env(cache.path());
    let p = resolve_in("ntlb/synth-clip", None, &env).unwrap();
    assert_eq!(p, snap);
    assert!(std::fs::symlink_metadata(p.join("model.safetensors"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(features(&p), features(&synth_clip()));
    // The tokenizer is found in the snapshot.
    ClipTokenizer::for_model(&p, None).unwrap();
}

#[test]
fn a_revision_is_a_ref_or_a_commit_hash() {
    let cache = tempfile::tempdir().unwrap();
    let main = add_snapshot(cache.path(), "ntlb/m", MAIN, &["main"], &synth_files());
    // Revision v2 is a Hugging Face folder holding pytorch_model.bin, no model.safetensors.
    let hf = pytorch_fixture("tiny_hf");
    let v2 = add_snapshot(
        cache.path(),
        "ntlb/m",
        V2,
        &["v2"],
        &[
            ("config.json", hf.join("config.json")),
            ("pytorch_model.bin", hf.join("pytorch_model.bin")),
        ],
    );
    let env = cache_env(cache.path());
    assert_eq!(resolve_in("ntlb/m", None, &env).unwrap(), main);
    assert_eq!(resolve_in("ntlb/m", Some("main"), &env).unwrap(), main);
    assert_eq!(resolve_in("ntlb/m", Some("v2"), &env).unwrap(), v2);
    // A commit hash names its snapshot without a ref.
    std::fs::remove_file(cache.path().join("models--ntlb--m/refs/v2")).unwrap();
    assert_eq!(resolve_in("ntlb/m", Some(V2), &env).unwrap(), v2);
    assert_eq!(features(&v2), features(&hf));
    let e = err(resolve_in("ntlb/m", Some("v2"), &env));
    assert!(
        e.contains("refs/v2") && e.contains("huggingface-cli download ntlb/m --revision v2"),
        "{e}"
    );
}

#[test]
fn hf_hub_cache_wins_over_hf_home() {
    let home = tempfile::tempdir().unwrap();
    let hub_cache = tempfile::tempdir().unwrap();
    let in_home = add_snapshot(&home.path().join("hub"), "ntlb/m", MAIN, &["main"], &synth_files());
    let in_cache = add_snapshot(hub_cache.path(), "ntlb/m", V2, &["main"], &synth_files());
    let mut env = HubEnv {
        hf_home: Some(home.path().into()),
        home: Some(OsString::from("/nonexistent-home")),
        ..HubEnv::default()
    };
    assert_eq!(resolve_in("ntlb/m", None, &env).unwrap(), in_home);
    env.hf_hub_cache = Some(hub_cache.path().into());
    assert_eq!(resolve_in("ntlb/m", None, &env).unwrap(), in_cache);
    // Neither: ~/.cache/huggingface/hub.
    let e = err(resolve_in(
        "ntlb/m",
        None,
        &HubEnv {
            home: Some(OsString::from("/nonexistent-home")),
            ..HubEnv::default()
        },
    ));
    assert!(
        e.contains("/nonexistent-home/.cache/huggingface/hub/models--ntlb--m/refs/main"),
        "{e}"
    );
}

#[test]
fn a_missing_repo_lists_the_paths_and_the_download_command() {
    let cache = tempfile::tempdir().unwrap();
    let env = cache_env(cache.path());
    let e = err(resolve_in("ntlb/absent", None, &env));
    eprintln!("{e}");
    assert!(e.contains("ntlb/absent (no such file or folder)"), "{e}");
    assert!(
        e.contains(&cache.path().join("models--ntlb--absent/refs/main").display().to_string()),
        "{e}"
    );
    assert!(e.contains("HF_HUB_CACHE"), "{e}");
    assert!(e.ends_with("download it with: huggingface-cli download ntlb/absent"), "{e}");
    let e = err(resolve_in("hf-hub:ntlb/absent", Some("v1"), &env));
    assert!(e.ends_with("huggingface-cli download ntlb/absent --revision v1"), "{e}");
    // Neither a path nor a name.
    let e = err(resolve_in("no/such/file.safetensors", None, &env));
    assert!(e.contains("neither an existing file or folder nor a model name"), "{e}");
    // A revision with a path.
    let e = err(resolve_in(&synth_clip().display().to_string(), Some("main"), &env));
    assert!(e.contains("a revision only applies to a model name"), "{e}");
}

#[test]
fn a_missing_snapshot_is_named() {
    let cache = tempfile::tempdir().unwrap();
    add_snapshot(cache.path(), "ntlb/m", MAIN, &["main"], &synth_files());
    std::fs::write(cache.path().join("models--ntlb--m/refs/main"), V2).unwrap();
    let e = err(resolve_in("ntlb/m", None, &cache_env(cache.path())));
    assert!(e.contains(&format!("models--ntlb--m/snapshots/{V2} (no such folder")), "{e}");
    assert!(e.contains("huggingface-cli download ntlb/m"), "{e}");
}

#[test]
fn a_dangling_symlink_is_an_incomplete_download() {
    let cache = tempfile::tempdir().unwrap();
    let snap = add_snapshot(cache.path(), "ntlb/m", MAIN, &["main"], &synth_files());
    std::fs::remove_file(cache.path().join(format!("models--ntlb--m/blobs/{MAIN}-model.safetensors"))).unwrap();
    let e = err(resolve_in("ntlb/m", None, &cache_env(cache.path())));
    eprintln!("{e}");
    assert!(
        e.contains("model.safetensors") && e.contains("does not exist") && e.contains("incomplete download"),
        "{e}"
    );
    assert!(e.contains("huggingface-cli download ntlb/m"), "{e}");
    // Loading the snapshot folder directly says the same, not "no weights".
    let l = Clip::load(&snap, None, &Device::flex())
        .err()
        .expect("dangling weights refused")
        .to_string();
    assert!(l.contains("symlink") && l.contains("incomplete download"), "{l}");
}

#[test]
fn hf_hub_names_the_open_clip_weights_file() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("open_clip_config.json");
    std::fs::write(
        &config,
        r#"{"model_cfg": {"embed_dim": 16, "quick_gelu": true,
            "vision_cfg": {"image_size": 16, "layers": 1, "width": 64, "patch_size": 8},
            "text_cfg": {"context_length": 16, "vocab_size": 50, "width": 64, "heads": 1, "layers": 1}}}"#,
    )
    .unwrap();
    let tok = synth_clip().join("tokenizer.json");
    let st = add_snapshot(
        cache.path(),
        "ntlb/oc",
        MAIN,
        &["main"],
        &[
            ("open_clip_model.safetensors", pytorch_fixture("tiny_openai.safetensors")),
            ("open_clip_pytorch_model.bin", pytorch_fixture("tiny_openai.bin")),
            ("open_clip_config.json", config.clone()),
            ("tokenizer.json", tok.clone()),
        ],
    );
    let bin = add_snapshot(
        cache.path(),
        "ntlb/oc",
        V2,
        &["bin-only"],
        &[
            ("open_clip_pytorch_model.bin", pytorch_fixture("tiny_openai.bin")),
            ("open_clip_config.json", config.clone()),
        ],
    );
    let env = cache_env(cache.path());
    let p = resolve_in("hf-hub:ntlb/oc", None, &env).unwrap();
    assert_eq!(p, st.join("open_clip_model.safetensors"));
    // The tokenizer beside a weights file, in the snapshot (not among the blobs).
    ClipTokenizer::for_model(&p, None).unwrap();
    let b = resolve_in("hf-hub:ntlb/oc", Some("bin-only"), &env).unwrap();
    assert_eq!(b, bin.join("open_clip_pytorch_model.bin"));
    assert_eq!(features(&p), features(&pytorch_fixture("tiny_openai.safetensors")));
    assert_eq!(features(&b), features(&p));
    // The config must be beside the weights.
    std::fs::remove_file(bin.join("open_clip_config.json")).unwrap();
    let e = err(resolve_in("hf-hub:ntlb/oc", Some("bin-only"), &env));
    assert!(e.contains("no open_clip_config.json") && e.contains("--revision bin-only"), "{e}");
    // A transformers name of a repo without its files says so.
    let e = err(resolve_in("ntlb/oc", None, &env));
    assert!(e.contains("model.safetensors") && e.contains("pytorch_model.bin"), "{e}");
}
