//! Same numbers whatever the container: the generated world written as folder trees, as
//! WebDataset shards (CLIP_benchmark's layout) and as Hugging Face parquet files, both shuffled,
//! gives the same result rows, zero-shot and CoOp, on all five sets (the one-shot split, the
//! class-name score's held-out images and `max_per_class` come from one canonical order);
//! unreadable members are failed images (fatal with `strict`), and the containers' identities
//! make their own keys.

mod common;

use ntlb_eval::features::FeatureCache;
use std::path::Path;

use ntlb_data::classes::ClassList;
use ntlb_data::source::{Layout, TrainSet};
use ntlb_data::write::{write_parquet_split, write_wds, Written};
use ntlb_eval::results::{read_table, ResultRow, RunRecord};
use ntlb_eval::sweep::{open_datasets, run_sweep, SweepConfig, SweepOptions};

fn written(items: &[(ntlb_data::image::ImageRef, usize)]) -> Vec<Written> {
    items
        .iter()
        .map(|(r, l)| {
            let p = r.as_file().expect("a folder's file");
            let ext = p.extension().unwrap().to_string_lossy().to_ascii_lowercase().replace("jpeg", "jpg");
            Written {
                bytes: std::fs::read(p).unwrap(),
                ext,
                path: p.file_name().unwrap().to_string_lossy().into_owned(),
                label: *l,
            }
        })
        .collect()
}

/// The images in a fixed shuffled order: published shards and parquet files hold a set
/// shuffled, across shards and files.
fn shuffled(mut w: Vec<Written>) -> Vec<Written> {
    let mut keyed: Vec<(usize, Written)> = w.drain(..).enumerate().map(|(i, x)| ((i * 7919 + 13) % 101, x)).collect();
    keyed.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    keyed.into_iter().map(|(_, x)| x).collect()
}

/// The sets of the folder sweep, written shuffled as `<out>/wds/<kind>` and `<out>/hf/<kind>`;
/// the ImageNet root of each holds its `train` split too.
fn write_containers(folder_cfg: &SweepConfig, out: &Path) {
    let cfg = folder_cfg.resolved();
    let (classes, sets) = open_datasets(&cfg).unwrap();
    for s in &sets {
        let w = shuffled(written(&s.items));
        assert_ne!(
            w.iter().map(|x| x.label).collect::<Vec<_>>(),
            s.items.iter().map(|x| x.1).collect::<Vec<_>>()
        );
        write_wds(&out.join("wds").join(s.kind.name()), "test", &w, Some(&s.classes.names), 4).unwrap();
        write_parquet_split(&out.join("hf").join(s.kind.name()), "validation", &w, 5, 2).unwrap();
    }
    let train = TrainSet::open(
        cfg.coop.as_ref().unwrap().train_root.as_ref().unwrap(),
        &Layout::default(),
        &classes,
        None,
    )
    .unwrap();
    let w = shuffled(written(&train.items));
    write_wds(&out.join("wds/imagenet"), "train", &w, None, 5).unwrap();
    write_parquet_split(&out.join("hf/imagenet"), "train", &w, 7, 3).unwrap();
}

/// The folder sweep with its datasets (and training set) in `format` under `base`.
fn container_sweep(folder_toml: &str, root: &Path, base: &Path, format: &str, results: &Path) -> SweepConfig {
    let mut t = folder_toml
        .replace(
            &format!("results = \"{}\"", root.join("folder-results").display()),
            &format!("results = \"{}\"", results.display()),
        )
        .replace(
            &format!("train_root = \"{}/imagenet\"\n", root.display()),
            &format!("train_root = \"{}/imagenet\"\ntrain_format = \"{format}\"\n", base.display()),
        );
    for (dir, kind) in [
        ("imagenet", "imagenet"),
        ("v2", "imagenet-v2"),
        ("sketch", "imagenet-sketch"),
        ("imagenet-a", "imagenet-a"),
        ("imagenet-r", "imagenet-r"),
    ] {
        t = t.replace(
            &format!("\nroot = \"{}/{dir}\"\n", root.display()),
            &format!("\nroot = \"{}/{kind}\"\nformat = \"{format}\"\n", base.display()),
        );
    }
    assert_eq!(t.matches(&format!("format = \"{format}\"")).count(), 6, "{t}");
    let path = results.with_extension("toml");
    std::fs::write(&path, t).unwrap();
    SweepConfig::read(&path).unwrap()
}

/// Rows without their job key (it hashes the container), in a fixed order.
fn rows(results: &Path) -> Vec<ResultRow> {
    let mut r: Vec<ResultRow> = read_table(results)
        .unwrap()
        .into_iter()
        .map(|r| ResultRow {
            run_key: String::new(),
            ..r
        })
        .collect();
    r.sort_by_key(|r| format!("{:?}", (&r.method, &r.template, r.lambda, r.seed, &r.dataset)));
    r
}

fn records(results: &Path) -> Vec<RunRecord> {
    ntlb_eval::results::read_runs(results).unwrap()
}

#[test]
fn every_row_is_the_same_from_folders_shards_and_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    // A third val image per class: the class-name score's two held-out images are then a
    // choice, made from the canonical order.
    for w in common::WNIDS {
        std::fs::copy(
            root.join("imagenet/images/train").join(w).join("img1.JPEG"),
            root.join("imagenet/images/val").join(w).join("extra.jpg"),
        )
        .unwrap();
    }
    let model = common::synth_clip();
    let every_image = common::sweep_toml(&root, &model, &root.join("folder-results"), true);
    let path = root.join("every-image.toml");
    std::fs::write(&path, &every_image).unwrap();
    write_containers(&SweepConfig::read(&path).unwrap(), &root);
    // One image per class of ImageNet-V2: which one comes from the canonical order.
    let folder_toml = every_image.replace("kind = \"imagenet-v2\"\n", "kind = \"imagenet-v2\"\nmax_per_class = 1\n");
    assert!(folder_toml.contains("max_per_class = 1"));
    let path = root.join("folder.toml");
    std::fs::write(&path, &folder_toml).unwrap();
    let folder = SweepConfig::read(&path).unwrap();
    assert_eq!(run_sweep(&folder, &SweepOptions::default()).unwrap(), 3);
    let reference = rows(&folder.results);
    assert!(reference
        .iter()
        .any(|r| r.method == "coop" && r.lambda == Some(1.0) && r.dataset == "imagenet-r"));
    assert_eq!(
        reference
            .iter()
            .map(|r| r.dataset.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        5
    );
    let mut keys_seen: Vec<String> = records(&folder.results).into_iter().map(|r| r.key).collect();
    for (format, base) in [("wds", root.join("wds")), ("parquet", root.join("hf"))] {
        let results = root.join(format!("{format}-results"));
        let cfg = container_sweep(&folder_toml, &root, &base, format, &results);
        assert_eq!(run_sweep(&cfg, &SweepOptions::default()).unwrap(), 3, "{format}");
        let got = rows(&results);
        assert_eq!(got.len(), reference.len(), "{format}");
        for (a, b) in got.iter().zip(&reference) {
            assert_eq!(a, b, "{format}");
        }
        // The containers are other sets by content: their own job keys and cache entries.
        let recs = records(&results);
        assert!(recs.iter().all(|r| !keys_seen.contains(&r.key)), "{format}");
        keys_seen.extend(recs.iter().map(|r| r.key.clone()));
        // Relevance maps name the split's images in their container.
        let coop = recs.iter().find(|r| r.relevance.is_some()).unwrap();
        let img = coop.relevance.as_ref().unwrap()[0].image.display().to_string();
        assert!(img.contains(if format == "wds" { ".tar/s" } else { ".parquet#" }), "{img}");
        // The split file holds shard members or rows, relative to the training root.
        let split = std::fs::read_to_string(results.join("runs").join(&coop.key).join("split.json")).unwrap();
        assert!(
            split.contains(if format == "wds" {
                "\"shard\": \"train/"
            } else {
                "\"file\": \"data/train-"
            }),
            "{split}"
        );
        assert!(!split.contains(&root.display().to_string()));
        // Indexes cached beside the features: 5 evaluation sets and the training set.
        let indexes = std::fs::read_dir(cfg.cache_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".index.json"))
            .count();
        assert_eq!(indexes, 6, "{format}");
    }
}

/// A member that does not decode is a failed image named by shard and member, as an
/// unreadable file is; `strict` makes it fatal.
#[test]
fn unreadable_members_are_failed_images() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = common::synth_clip();
    let cl = ClassList::read(&root.join("classes.tsv")).unwrap();
    let mut w: Vec<Written> = (0..cl.len())
        .map(|c| Written {
            bytes: std::fs::read(root.join("imagenet/images/val").join(&cl.ids[c]).join("img0.png")).unwrap(),
            ext: "png".into(),
            path: format!("{c}.png"),
            label: c,
        })
        .collect();
    w[2].bytes.truncate(40);
    // Class 2 keeps one readable image: a class with none is an empty class, not failed images.
    w.push(Written {
        bytes: std::fs::read(root.join("imagenet/images/val").join(&cl.ids[2]).join("img1.png")).unwrap(),
        ext: "png".into(),
        path: "extra.png".into(),
        label: 2,
    });
    write_wds(&root.join("wds"), "test", &w, Some(&cl.names), 4).unwrap();
    let templates = root.join("templates.txt");
    std::fs::write(&templates, "a photo of a {}.\n").unwrap();
    let toml = |strict: bool, results: &str| {
        format!(
            "name = \"t\"\nresults = \"{}\"\nclasses = \"{}\"\nbatch_size = 4\nstrict = {strict}\n\
             [[models]]\nname = \"tiny\"\npath = \"{}\"\n\
             [[datasets]]\nkind = \"imagenet\"\nroot = \"{}\"\nformat = \"wds\"\n\
             [zero_shot]\ntemplates = \"{}\"\n",
            root.join(results).display(),
            root.join("classes.tsv").display(),
            model.display(),
            root.join("wds").display(),
            templates.display()
        )
    };
    let cfg: SweepConfig = toml::from_str(&toml(false, "lenient")).unwrap();
    assert_eq!(run_sweep(&cfg, &SweepOptions::default()).unwrap(), 1);
    let rec = &records(&cfg.results)[0];
    let bad = root.join("wds/test/0.tar/s0000002.png");
    assert_eq!(rec.failed_images.len(), 1, "{:?}", rec.failed_images);
    assert_eq!(rec.failed_images[0].0, bad);
    assert!(rec.rows.iter().all(|r| r.n_failed == 1 && r.n_images == cl.len()));
    let strict: SweepConfig = toml::from_str(&toml(true, "strict")).unwrap();
    let e = format!("{:#}", run_sweep(&strict, &SweepOptions::default()).unwrap_err());
    assert!(e.contains(&bad.display().to_string()) && e.contains("--strict"), "{e}");
}

/// WebP members (CLIP_benchmark's default: lossless) and WebP bytes in parquet rows decode as
/// the same WebP files do in a folder: the same features, to the bit, lossless, lossy and with
/// alpha.
#[test]
fn webp_members_decode_as_webp_files() {
    use burn::tensor::Device;
    use ntlb_clip::preprocess::{encode_webp, Raster};
    use ntlb_data::source::Format;
    use ntlb_data::variants::{DatasetKind, EvalSet};
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let cl = ClassList::read(&root.join("classes.tsv")).unwrap();
    let mut w = Vec::new();
    for c in 0..cl.len() {
        for (k, quality) in [None, Some(75.0), None].into_iter().enumerate() {
            let channels = if k == 2 { 4 } else { 3 };
            let (width, height) = (37 + 5 * c, 29 + 3 * k);
            let data = (0..width * height * channels)
                .map(|i| ((i * (c + 3) + k * 71) % 251) as u8)
                .collect();
            let r = Raster {
                width,
                height,
                channels,
                data,
            };
            w.push(Written {
                bytes: encode_webp(&r, quality).unwrap(),
                ext: "webp".into(),
                path: format!("img{k}.webp"),
                label: c,
            });
        }
    }
    for x in &w {
        let dir = root.join("webp-folder/images/val").join(&cl.ids[x.label]);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(&x.path), &x.bytes).unwrap();
    }
    write_wds(&root.join("webp-wds"), "test", &w, Some(&cl.names), 5).unwrap();
    write_parquet_split(&root.join("webp-hf"), "validation", &w, 8, 3).unwrap();
    let clip = ntlb_clip::Clip::load(&common::synth_clip(), None, &Device::flex()).unwrap();
    let numerics = ntlb_eval::identity::Numerics::from_config("cpu", "f32").unwrap();
    let feats = |dir: &str, format: Format| {
        let layout = Layout {
            format,
            ..Layout::default()
        };
        let set = EvalSet::open_in(DatasetKind::Imagenet, &root.join(dir), &layout, &cl, None, None, None).unwrap();
        assert_eq!(set.items.len(), 18);
        let f = FeatureCache {
            dir: None,
            numerics: &numerics,
            batch: 4,
            strict: true,
            progress: false,
        }
        .dataset(&clip, &set, "sha")
        .unwrap();
        (f.data, f.labels)
    };
    let folder = feats("webp-folder", Format::Folder);
    assert_eq!(folder.1.len(), 18);
    assert!(feats("webp-wds", Format::Wds) == folder, "wds members");
    assert!(feats("webp-hf", Format::Parquet) == folder, "parquet rows");
}

/// A shard cut where a sample ends would read as a shorter set (and, with the empty class it
/// leaves allowed, score over fewer images, exit 0): the sweep fails naming the shard and where
/// it ends instead, with or without `allow_empty_classes`.
#[test]
fn a_truncated_shard_fails_the_sweep_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::make_world(tmp.path());
    let model = common::synth_clip();
    let cl = ClassList::read(&root.join("classes.tsv")).unwrap();
    let w: Vec<Written> = (0..cl.len())
        .map(|c| Written {
            bytes: std::fs::read(root.join("imagenet/images/val").join(&cl.ids[c]).join("img0.png")).unwrap(),
            ext: "png".into(),
            path: format!("{c}.png"),
            label: c,
        })
        .collect();
    let shards = write_wds(&root.join("wds"), "test", &w, Some(&cl.names), 4).unwrap();
    // Cut before the last sample of the first shard: its two members and the end-of-archive blocks.
    let whole = std::fs::read(&shards[0]).unwrap();
    // Each member is a 512-byte header and its data in 512-byte blocks; a label takes one.
    let at: usize = w[..3].iter().map(|x| 512 + x.bytes.len().div_ceil(512) * 512 + 1024).sum();
    assert!(whole[at..].starts_with(b"s0000003.png"), "the header of sample 3 is at {at}");
    std::fs::write(&shards[0], &whole[..at]).unwrap();
    let templates = root.join("templates.txt");
    std::fs::write(&templates, "a photo of a {}.\n").unwrap();
    for allow in [false, true] {
        let toml = format!(
            "name = \"t\"\nresults = \"{}\"\nclasses = \"{}\"\nbatch_size = 4\n\
             [[models]]\nname = \"tiny\"\npath = \"{}\"\n\
             [[datasets]]\nkind = \"imagenet\"\nroot = \"{}\"\nformat = \"wds\"\nallow_empty_classes = {allow}\n\
             [zero_shot]\ntemplates = \"{}\"\n",
            root.join(format!("results-{allow}")).display(),
            root.join("classes.tsv").display(),
            model.display(),
            root.join("wds").display(),
            templates.display()
        );
        let cfg: SweepConfig = toml::from_str(&toml).unwrap();
        let e = format!("{:#}", run_sweep(&cfg, &SweepOptions::default()).unwrap_err());
        assert!(
            e.contains(&shards[0].display().to_string()) && e.contains(&format!("truncated: the file ends at byte {at}")),
            "allow_empty_classes = {allow}: {e}"
        );
    }
}
