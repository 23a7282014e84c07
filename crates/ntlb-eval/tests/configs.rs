//! The shipped sweep configs parse and plan the paper's comparison.

use ntlb_eval::sweep::{plan, Job, SweepConfig};

fn read(name: &str) -> SweepConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut c = SweepConfig::read(&root.join("configs").join(name)).unwrap();
    // Config paths are relative to the repository root.
    if let Some(co) = &mut c.coop {
        co.config = co.config.as_ref().map(|p| root.join(p));
    }
    c.classes = root.join(&c.classes);
    c
}

#[test]
fn imagenet_configs_plan_the_paper_comparison() {
    let c = read("imagenet.toml");
    let jobs = plan(&c).unwrap();
    assert_eq!(jobs.len(), 1 + 2 * 3, "zero-shot + CoOp λ∈{{0,1}} × seeds 1–3");
    assert!(jobs
        .iter()
        .any(|j| matches!(j, Job::Coop { lambda, seed: 3, train, .. } if *lambda == 1.0 && train.prompt.allow_duplicate_names)));
    assert_eq!(c.datasets.len(), 5);
    // Keys hash file contents; stand-in hashes are enough to see that jobs never share one.
    let z = c.zero_shot.as_ref().unwrap();
    let ident = ntlb_eval::identity::SweepIdentity {
        numerics: ntlb_eval::identity::Numerics::from_config(&c.device, &c.precision).unwrap(),
        strict: c.strict,
        convert_order: c.convert_order,
        classes: "classes".into(),
        datasets: vec!["d".into(); 5],
        set_items: vec!["i".into(); 5],
        dataset_names: None,
        models: c.models.iter().map(|m| (m.name.clone(), "checkpoint".into())).collect(),
        model_numerics: c.models.iter().map(|m| (m.name.clone(), "numerics".into())).collect(),
        templates: std::iter::once(&z.templates)
            .chain(z.ensembles.values())
            .map(|p| (p.clone(), vec!["a photo of a {}.".to_string()]))
            .collect(),
        train: [("imagenet".to_string(), "train".to_string())].into(),
    };
    let keys: std::collections::BTreeSet<String> = ident.keys(&jobs).unwrap().into_iter().collect();
    assert_eq!(keys.len(), jobs.len(), "every job has its own key");
    // The reference's conversion order is the default and leaves keys as they were; CLIP's
    // order is another job.
    assert_eq!(c.convert_order, ntlb_clip::preprocess::ConvertOrder::Dassl);
    let clip_order = ntlb_eval::identity::SweepIdentity {
        convert_order: ntlb_clip::preprocess::ConvertOrder::Clip,
        ..ident.clone()
    };
    assert_ne!(clip_order.key(&jobs[0]).unwrap(), ident.key(&jobs[0]).unwrap());
    let parsed: SweepConfig = toml::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/imagenet.toml"))
            .unwrap()
            .replacen("name =", "convert_order = \"clip\"\nname =", 1),
    )
    .unwrap();
    assert_eq!(parsed.convert_order, ntlb_clip::preprocess::ConvertOrder::Clip);
    let full = read("imagenet-full.toml");
    assert_eq!(
        full.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["RN50", "RN101", "ViT-B/32", "ViT-B/16"]
    );
    assert_eq!(plan(&full).unwrap().len(), 4 * 7);
    let r = c.resolved();
    assert!(r.datasets[0].root.starts_with("data") && r.models[0].path.starts_with("checkpoints"));
}

/// CLIP's ImageNet list repeats two names (`missile`, `sunglasses`): zero-shot refuses repeats
/// unless `zero_shot.allow_duplicate_names`, which the paper's configs set (CoOp's through
/// `prompt.allow_duplicate_names`), so the reference's list keeps working.
#[test]
fn the_clip_class_list_needs_and_has_allow_duplicate_names() {
    let names = ntlb_data::classes::ClassList::read(&read("imagenet.toml").classes).unwrap().names;
    let e = ntlb_prompt::prompt::check_classnames(&names, false).unwrap_err().to_string();
    assert!(e.contains("\"missile\"") || e.contains("\"sunglasses\""), "{e}");
    ntlb_prompt::prompt::check_classnames(&names, true).unwrap();
    for name in ["imagenet.toml", "imagenet-full.toml"] {
        let c = read(name);
        assert!(c.zero_shot.as_ref().unwrap().allow_duplicate_names, "{name}");
        assert!(plan(&c).unwrap().iter().all(|j| match j {
            Job::Coop { train, .. } => train.prompt.allow_duplicate_names,
            Job::ZeroShot { .. } => true,
        }));
    }
}

#[test]
fn dry_run_plans_without_the_data_but_a_real_run_refuses() {
    let mut c = read("imagenet.toml");
    c.data_root = Some(std::env::temp_dir().join("ntlb-no-such-data"));
    let dry = ntlb_eval::sweep::SweepOptions {
        shard: Some((0, 2)),
        dry_run: true,
        progress: false,
        max_jobs: None,
    };
    assert_eq!(ntlb_eval::sweep::run_sweep(&c, &dry).unwrap(), 0);
    let real = ntlb_eval::sweep::SweepOptions { dry_run: false, ..dry };
    let e = ntlb_eval::sweep::run_sweep(&c, &real).unwrap_err().to_string();
    assert!(e.contains("ntlb-no-such-data"), "{e}");
}

/// The container example plans the same jobs as configs/imagenet.toml, its sets as shards and
/// its training split as parquet.
#[test]
fn the_container_config_plans_the_same_comparison() {
    use ntlb_data::source::Format;
    let c = read("imagenet-containers.toml");
    assert_eq!(plan(&c).unwrap().len(), plan(&read("imagenet.toml")).unwrap().len());
    assert!(
        c.datasets.len() == 5
            && c.datasets
                .iter()
                .all(|d| d.format == Format::Wds && d.layout().split(false) == "test")
    );
    let co = c.coop.as_ref().unwrap();
    assert_eq!(
        (co.train_format, co.train_layout().split(true).as_str()),
        (Format::Parquet, "train")
    );
}
