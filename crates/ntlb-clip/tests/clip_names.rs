//! clip.load names resolve to the file clip.load keeps, checked by the digest clip.load checks;
//! open_clip pairs to open_clip's download in the Hugging Face cache, computed as open_clip
//! computes the pair; a name with no file says where it looked.

use std::path::{Path, PathBuf};

use ntlb_clip::config::Activation;
use ntlb_clip::hub::{resolve_in, HubEnv, HubError};
use ntlb_clip::names::{self, ClipLoadModel};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/torchscript")
        .join(name)
}

fn env(clip_cache: &Path, hf: &Path) -> HubEnv {
    HubEnv {
        clip_cache: Some(clip_cache.into()),
        hf_hub_cache: Some(hf.into()),
        home: Some("/nonexistent-home".into()),
        ..Default::default()
    }
}

#[test]
fn a_clip_load_name_with_no_file_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let e = resolve_in("ViT-B/32", None, &env(tmp.path(), tmp.path())).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, HubError::NotFound { .. }), "{msg}");
    assert!(msg.contains(&tmp.path().join("ViT-B-32.pt").display().to_string()), "{msg}");
    assert!(msg.contains("download_root") && msg.contains("clip.load('ViT-B/32'"), "{msg}");
    // Without --clip-cache / NTLB_CLIP_CACHE: clip.load's default.
    let home = HubEnv {
        home: Some(tmp.path().into()),
        ..Default::default()
    };
    let msg = resolve_in("RN50", None, &home).unwrap_err().to_string();
    assert!(msg.contains(&tmp.path().join(".cache/clip/RN50.pt").display().to_string()), "{msg}");
}

#[test]
fn a_clip_load_file_with_another_digest_is_refused_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ViT-B-32.pt");
    std::fs::copy(fixture("tiny_fp16.pt"), &file).unwrap();
    let msg = resolve_in("ViT-B/32", None, &env(tmp.path(), tmp.path())).unwrap_err().to_string();
    let found = ntlb_core::digest::sha256_file(&file).unwrap();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(
        msg.contains("40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af") && msg.contains(&found),
        "{msg}"
    );
    assert!(resolve_in("ViT-B/32", Some("main"), &env(tmp.path(), tmp.path())).is_err());
}

#[test]
fn a_clip_load_file_with_the_tables_digest_resolves_and_loads() {
    // The table's rule on a file whose digest the test knows: clip.load's own digests need the
    // real 350 MB download.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ViT-B-32.pt");
    std::fs::copy(fixture("tiny_fp32.pt"), &file).unwrap();
    let sha = ntlb_core::digest::sha256_file(&file).unwrap();
    let leaked: &'static str = Box::leak(sha.clone().into_boxed_str());
    let m = ClipLoadModel {
        name: "ViT-B/32",
        sha256: leaked,
        file: "ViT-B-32.pt",
    };
    let r = names::resolve_clip_load(&m, &env(tmp.path(), tmp.path()), &[]).unwrap();
    assert_eq!(r.path, file);
    assert_eq!(r.sha256.as_deref(), Some(sha.as_str()));
    assert!(r.checked.contains(&sha) && r.located.contains("--clip-cache"), "{r:?}");
    let clip = ntlb_clip::Clip::load(&r.path, None, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(clip.numerics.text_activation, Activation::QuickGelu);
    // The real table's entry for this name is not this file: identify says nothing.
    assert!(names::identify(&file, &sha).is_none());
}

#[test]
fn names_of_both_tables_are_names() {
    for n in [
        "RN50",
        "ViT-B/32",
        "ViT-L/14@336px",
        "ViT-B-32/laion2b_s34b_b79k",
        "ViT-B-32-quickgelu/openai",
    ] {
        assert!(ntlb_clip::hub::is_name(n), "{n}");
    }
    assert!(!ntlb_clip::hub::is_name("RN49"));
}

const HASH: &str = "0123456789abcdef0123456789abcdef01234567";

/// A Hugging Face cache holding `repo` with `file` (the fixture's twin) as open_clip downloads
/// a pair: the weights alone.
fn hf_cache(root: &Path, repo: &str, file: &str) -> PathBuf {
    let dir = root.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join(HASH);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), HASH).unwrap();
    std::fs::copy(fixture("tiny.safetensors"), snap.join(file)).unwrap();
    snap.join(file)
}

#[test]
fn open_clip_pairs_resolve_to_their_download_with_their_numerics() {
    let tmp = tempfile::tempdir().unwrap();
    let e = env(tmp.path(), tmp.path());
    let laion = hf_cache(tmp.path(), "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "open_clip_model.safetensors");
    let openai = hf_cache(tmp.path(), "timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin");
    assert_eq!(resolve_in("ViT-B-32/laion2b_s34b_b79k", None, &e).unwrap(), laion);
    assert_eq!(resolve_in("ViT-B-32-quickgelu/openai", None, &e).unwrap(), openai);
    assert_eq!(resolve_in("ViT-B-32/openai", None, &e).unwrap(), openai);

    let n = ntlb_clip::checkpoint::numerics(&laion, None).unwrap();
    assert_eq!((n.text_activation, n.vision_activation), (Activation::Gelu, Activation::Gelu));
    assert!(
        n.activation_source.contains("ViT-B-32/laion2b_s34b_b79k"),
        "{}",
        n.activation_source
    );
    let n = ntlb_clip::checkpoint::numerics(&openai, None).unwrap();
    assert_eq!(n.text_activation, Activation::QuickGelu);
    // An explicit activation that contradicts the pair is an error, not a silent pick.
    assert!(ntlb_clip::checkpoint::numerics(&laion, Some(Activation::QuickGelu)).is_err());
    let clip = ntlb_clip::Clip::load(&laion, None, &burn::tensor::Device::flex()).unwrap();
    assert_eq!(clip.numerics.text_activation, Activation::Gelu);

    let r = names::resolve_in("ViT-B-32/laion2b_s34b_b79k", None, &e, &[]).unwrap().unwrap();
    assert!(
        r.entry.contains("laion/CLIP-ViT-B-32-laion2B-s34B-b79K") && r.entry.contains("open_clip_torch 3.3.0"),
        "{r:?}"
    );
    assert!(names::identify(&laion, "x").unwrap().contains("ViT-B-32/laion2b_s34b_b79k"));

    // A pair whose repository is not in the cache: where it looked and the download command.
    let msg = resolve_in("ViT-B-16/laion2b_s34b_b88k", None, &e).unwrap_err().to_string();
    assert!(
        msg.contains("models--laion--CLIP-ViT-B-16-laion2B-s34B-b88K") && msg.contains("huggingface-cli download"),
        "{msg}"
    );
}
