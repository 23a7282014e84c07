//! Trainer, schedule, optimiser, chunking, save/load, resume, bad input. Uses the in-repo
//! ModifiedResNet fixture (64 px, 1000-token vocabulary) with synthetic prompt tokens, so it
//! needs nothing from ../shared.

// The torch reference values are kept exactly as torch printed them.
#![allow(clippy::excessive_precision)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use ntlb_clip::{l2_normalize, Clip};
use ntlb_prompt::class_text::ClassTextEncoder;
use ntlb_prompt::objective::{step, LossConfig, StepOptions};
use ntlb_prompt::prompt::{check_classnames, ClassPosition, PromptConfig, PromptLayout};
use ntlb_prompt::train::{sgd_update, train, LearnedPrompt, OptimConfig, StopAt, TrainConfig};

fn model(device: &Device) -> Clip {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ntlb-clip/tests/fixtures/rn/model.safetensors");
    Clip::load(&p, None, device).unwrap()
}

/// `"X … X <name>."` in the fixture's vocabulary: 998 = start, 999 = end (largest id), 7 = '.'.
fn layout(n_classes: usize, n_ctx: usize, position: ClassPosition) -> PromptLayout {
    let mut rows = Vec::new();
    let mut lens = Vec::new();
    for c in 0..n_classes {
        let name: Vec<u32> = (0..1 + c % 3).map(|i| 100 + 17 * c as u32 + i as u32).collect();
        let mut ids = vec![998];
        ids.extend(std::iter::repeat_n(5, n_ctx));
        ids.extend(&name);
        ids.extend([7, 999]);
        ids.resize(77, 0);
        rows.push(ids);
        lens.push(name.len());
    }
    let cfg = PromptConfig {
        n_ctx,
        class_position: position,
        ..PromptConfig::default()
    };
    PromptLayout::from_tokens(cfg, n_ctx, rows, lens, None)
}

fn write_images(dir: &Path, n_classes: usize) -> Vec<(PathBuf, usize)> {
    (0..n_classes)
        .map(|c| {
            let img = image::RgbImage::from_fn(72, 80, |x, y| {
                image::Rgb([
                    (c * 60 % 256) as u8,
                    ((x * 3 + y) % 256) as u8,
                    ((y * 5 + c as u32 * 40) % 256) as u8,
                ])
            });
            let p = dir.join(format!("class{c}.png"));
            img.save(&p).unwrap();
            (p, c)
        })
        .collect()
}

/// A model, four one-image classes written to a temporary folder, and their prompt layout.
struct Run {
    device: Device,
    clip: Clip,
    lay: PromptLayout,
    tmp: tempfile::TempDir,
    data: Vec<(PathBuf, usize)>,
    classes: Vec<String>,
}

impl Run {
    fn new(position: ClassPosition) -> Run {
        let device = Device::flex().autodiff();
        let clip = model(&device);
        let tmp = tempfile::tempdir().unwrap();
        let data = write_images(tmp.path(), 4);
        let classes = (0..4).map(|c| format!("class {c}")).collect();
        Run {
            lay: layout(4, 4, position),
            device,
            clip,
            tmp,
            data,
            classes,
        }
    }
}

fn small_config() -> TrainConfig {
    TrainConfig {
        prompt: PromptConfig {
            n_ctx: 4,
            ..PromptConfig::default()
        },
        optim: OptimConfig {
            epochs: 3,
            batch_size: 2,
            ..OptimConfig::default()
        },
        chunk: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn lr_per_epoch_matches_dassl_and_torch() {
    // torch.optim.lr_scheduler.CosineAnnealingLR(T_max=50.0) wrapped as Dassl's
    // ConstantWarmupScheduler(warmup_epoch=1, cons_lr=1e-5), stepped per epoch (torch 2.9).
    let torch = [
        1.000000000000000e-05,
        2.000000000000000e-03,
        1.998026728428272e-03,
        1.992114701314478e-03,
        1.982287250728689e-03,
        1.968583161128631e-03,
        1.951056516295154e-03,
        1.929776485888252e-03,
        1.904827052466020e-03,
        1.876306680043864e-03,
        1.844327925502015e-03,
        1.809016994374947e-03,
        1.770513242775789e-03,
        1.728968627421411e-03,
        1.684547105928689e-03,
        1.637423989748690e-03,
        1.587785252292473e-03,
        1.535826794978996e-03,
        1.481753674101715e-03,
        1.425779291565072e-03,
        1.368124552684678e-03,
        1.309016994374947e-03,
        1.248689887164854e-03,
        1.187381314585724e-03,
        1.125333233564304e-03,
        1.062790519529313e-03,
        9.999999999999996e-04,
        9.372094804706863e-04,
        8.746667664356955e-04,
        8.126186854142751e-04,
        7.513101128351449e-04,
        6.909830056250527e-04,
        6.318754473153221e-04,
        5.742207084349271e-04,
        5.182463258982844e-04,
        4.641732050210029e-04,
        4.122147477075267e-04,
        3.625760102513100e-04,
        3.154528940713111e-04,
        2.710313725785885e-04,
        2.294867572242107e-04,
        1.909830056250525e-04,
        1.556720744979850e-04,
        1.236933199561363e-04,
        9.517294753398059e-05,
        7.022351411174861e-05,
        4.894348370484644e-05,
        3.141683887136901e-05,
        1.771274927131127e-05,
        7.885298685522230e-06,
    ];
    let o = OptimConfig::default();
    for (e, &want) in torch.iter().enumerate() {
        let got = o.lr_at(e);
        assert!((got - want).abs() <= 1e-12 * want.max(1e-3), "epoch {e}: {got} vs {want}");
    }
}

#[test]
fn sgd_matches_torch() {
    // torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), three steps from [0.5, -1, 2].
    let mut p = vec![0.5f32, -1.0, 2.0];
    let mut buf = None;
    for g in [[1.0f32, 2.0, -3.0], [0.5, -0.5, 0.25], [-1.0, 0.0, 1.0]] {
        sgd_update(&mut p, &g, &mut buf, 0.1, 0.9, 5e-4);
    }
    for (a, b) in p.iter().zip([0.23388127982616425f32, -1.4466840028762817, 2.6648833751678467]) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn chunked_classes_give_the_unchunked_gradient() {
    let device = Device::flex().autodiff();
    let clip = model(&device);
    for position in [ClassPosition::Middle, ClassPosition::End, ClassPosition::Front] {
        let lay = layout(7, 4, position);
        let ctx = lay.initial_context(&clip, 3);
        let imgs = Tensor::<4>::random([3, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let feats = l2_normalize(clip.encode_image(imgs).detach());
        let labels = [0, 4, 6];
        let run = |chunk| {
            let o = StepOptions {
                chunk,
                want_scores: true,
                want_rows: false,
                want_grad: true,
                ..StepOptions::default()
            };
            step(&clip, &lay, &ctx, [4, 64], feats.clone(), &labels, &LossConfig::default(), &o).unwrap()
        };
        let (a, b) = (run(64), run(2));
        assert!((a.total - b.total).abs() < 1e-6 * a.total.abs().max(1.0));
        let d = ntlb_golden::case::deviation(
            &b.grad_ctx.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &a.grad_ctx.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        );
        assert!(d.rel < 1e-5, "{position:?}: chunked gradient differs: {d:?}");
        assert!(a.scores.iter().zip(&b.scores).all(|(x, y)| (x - y).abs() < 1e-6));
        assert!(a.expl != 0.0 && a.grad_ctx.iter().any(|g| *g != 0.0));
    }
}

#[test]
fn resume_after_interruption_gives_the_same_context() {
    let Run {
        clip,
        lay,
        tmp,
        data,
        classes,
        ..
    } = Run::new(ClassPosition::Middle);
    let cfg = small_config();
    let full = train(
        &clip,
        &lay,
        &classes,
        &data,
        &cfg,
        &tmp.path().join("full"),
        ("m", "sha"),
        StopAt::default(),
        |_, _| {},
    )
    .unwrap();
    let killed = tmp.path().join("killed");
    let part = train(
        &clip,
        &lay,
        &classes,
        &data,
        &cfg,
        &killed,
        ("m", "sha"),
        StopAt { after_epochs: Some(1) },
        |_, _| {},
    )
    .unwrap();
    assert_eq!(part.manifest.epochs_done, 1);
    assert!(!killed.join("prompt.safetensors").exists(), "an unfinished run has no final prompt");
    let resumed = train(
        &clip,
        &lay,
        &classes,
        &data,
        &cfg,
        &killed,
        ("m", "sha"),
        StopAt::default(),
        |_, _| {},
    )
    .unwrap();
    assert_eq!(resumed.manifest.epochs_done, 3);
    assert_eq!(resumed.ctx, full.ctx, "resumed run ends on another context");
    assert_eq!(resumed.manifest.loss_curve, full.manifest.loss_curve);
    assert_ne!(full.ctx, lay.initial_context(&clip, cfg.seed), "training moved the context");
}

/// A trainer state that does not read back (cut in half, or a changed byte) is reported, moved aside to
/// `state.safetensors.damaged`, and the training runs again from the first epoch, ending on the
/// context of an uninterrupted run (not an error that needs the file deleted by hand).
#[test]
fn a_damaged_state_is_set_aside_and_trained_again() {
    let Run {
        clip,
        lay,
        tmp,
        data,
        classes,
        ..
    } = Run::new(ClassPosition::Middle);
    let cfg = small_config();
    let run = |out: &Path, stop| train(&clip, &lay, &classes, &data, &cfg, out, ("m", "sha"), stop, |_, _| {});
    let full = run(&tmp.path().join("full"), StopAt::default()).unwrap();
    let out = tmp.path().join("damaged");
    run(&out, StopAt { after_epochs: Some(1) }).unwrap();
    let state = out.join("state.safetensors");
    let bytes = std::fs::read(&state).unwrap();
    std::fs::write(&state, &bytes[..bytes.len() / 2]).unwrap();
    let again = run(&out, StopAt::default()).unwrap();
    assert_eq!(again.ctx, full.ctx);
    assert_eq!(again.manifest.loss_curve, full.manifest.loss_curve);
    assert_eq!(
        std::fs::read(out.join("state.safetensors.damaged")).unwrap(),
        &bytes[..bytes.len() / 2]
    );
    // A state whose bytes changed but still parse (the last value of the context or momentum):
    // caught by its digest, set aside, trained again; never resumed from.
    let out = tmp.path().join("flipped");
    run(&out, StopAt { after_epochs: Some(1) }).unwrap();
    let state = out.join("state.safetensors");
    let mut b = std::fs::read(&state).unwrap();
    *b.last_mut().unwrap() ^= 0x40;
    std::fs::write(&state, &b).unwrap();
    let again = run(&out, StopAt::default()).unwrap();
    assert_eq!(again.ctx, full.ctx, "a changed state was resumed from");
    assert_eq!(std::fs::read(out.join("state.safetensors.damaged")).unwrap(), b);
}

/// One check of every training setting, each error naming its key as a config file spells it.
#[test]
fn every_training_setting_is_checked_by_key() {
    TrainConfig::default().validate().unwrap();
    small_config().validate().unwrap();
    let cases: Vec<(&str, Box<dyn Fn(&mut TrainConfig)>)> = vec![
        ("loss.expl_weight", Box::new(|c| c.loss.expl_weight = -1.0)),
        ("loss.expl_weight", Box::new(|c| c.loss.expl_weight = f64::NAN)),
        ("loss.expl_weight", Box::new(|c| c.loss.expl_weight = f64::INFINITY)),
        ("optim.lr", Box::new(|c| c.optim.lr = f64::NAN)),
        ("optim.lr", Box::new(|c| c.optim.lr = 0.0)),
        ("optim.lr", Box::new(|c| c.optim.lr = -0.1)),
        ("optim.momentum", Box::new(|c| c.optim.momentum = -0.9)),
        ("optim.momentum", Box::new(|c| c.optim.momentum = f64::NAN)),
        ("optim.weight_decay", Box::new(|c| c.optim.weight_decay = f64::NEG_INFINITY)),
        ("optim.epochs", Box::new(|c| c.optim.epochs = 0)),
        ("optim.batch_size", Box::new(|c| c.optim.batch_size = 0)),
        ("shots", Box::new(|c| c.shots = 0)),
        ("prompt.n_ctx", Box::new(|c| c.prompt.n_ctx = 0)),
    ];
    for (key, break_it) in cases {
        let mut c = TrainConfig::default();
        break_it(&mut c);
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(e.to_string().starts_with(&format!("`{key}` = ")), "{e}");
    }
    let mut zero_ctx_from_words = TrainConfig::default();
    zero_ctx_from_words.prompt.n_ctx = 0;
    zero_ctx_from_words.prompt.init_words = Some("a photo of a".into());
    zero_ctx_from_words.validate().unwrap();
}

#[test]
fn saved_prompt_loads_and_gives_identical_logits() {
    let Run {
        device,
        clip,
        lay,
        tmp,
        data,
        classes,
    } = Run::new(ClassPosition::End);
    let mut cfg = small_config();
    cfg.prompt.class_position = ClassPosition::End;
    cfg.optim.epochs = 1;
    let out = tmp.path().join("run");
    let trained = train(&clip, &lay, &classes, &data, &cfg, &out, ("m", "sha"), StopAt::default(), |_, _| {}).unwrap();
    let loaded = LearnedPrompt::load(&out).unwrap();
    assert_eq!(loaded.ctx, trained.ctx);
    assert_eq!(loaded.manifest.config, cfg);
    let shape = loaded.manifest.ctx_shape;
    let img = l2_normalize(clip.encode_image(Tensor::<4>::ones([2, 3, 64, 64], &device)));
    let enc = ClassTextEncoder::new(&clip, &lay);
    let ctx = |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), shape), &device);
    let a = img.clone().matmul(enc.features(ctx(&trained.ctx), 64).transpose());
    let b = img.matmul(enc.features(ctx(&loaded.ctx), 2).transpose());
    assert_eq!(ntlb_core::host::to_f32_vec(a), ntlb_core::host::to_f32_vec(b));
}

#[test]
fn non_finite_loss_stops_and_keeps_the_last_good_context() {
    let Run {
        clip,
        lay,
        tmp,
        data,
        classes,
        ..
    } = Run::new(ClassPosition::Middle);
    let mut cfg = small_config();
    // A learning rate no context survives: the second step's loss is not finite.
    cfg.optim.warmup_epochs = 0;
    cfg.optim.lr = 1e38;
    let out = tmp.path().join("run");
    let err = train(&clip, &lay, &classes, &data, &cfg, &out, ("m", "sha"), StopAt::default(), |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("non-finite") && err.contains("step 2"), "{err}");
    let kept = ntlb_core::store::read_tensors(&out.join("ctx.last_good.safetensors")).unwrap();
    assert!(kept["ctx"].1.iter().all(|v| v.is_finite()));
}

#[test]
fn bad_class_lists_are_refused() {
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(check_classnames(&names(&["cat", "dog", "Cat"]), false)
        .unwrap_err()
        .to_string()
        .contains("twice"));
    assert!(check_classnames(&names(&["cat", "dog", "Cat"]), true).is_ok());
    assert!(check_classnames(&names(&["cat", " "]), true)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(check_classnames(&[], false).is_err());
}

#[test]
fn shared_pass1_gives_the_replicated_step() {
    use ntlb_prompt::objective::Pass1;
    let device = Device::flex().autodiff();
    let clip = model(&device);
    let lay = layout(7, 4, ClassPosition::Middle);
    let ctx = lay.initial_context(&clip, 3);
    let imgs = Tensor::<4>::random([3, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let feats = l2_normalize(clip.encode_image(imgs).detach());
    let labels = [0, 4, 6];
    let run = |pass1| {
        let o = StepOptions {
            chunk: 3,
            want_scores: true,
            pass1,
            ..StepOptions::default()
        };
        step(&clip, &lay, &ctx, [4, 64], feats.clone(), &labels, &LossConfig::default(), &o).unwrap()
    };
    let (a, b) = (run(Pass1::Replicated), run(Pass1::Shared));
    assert!(
        (a.total - b.total).abs() < 1e-6 * a.total.abs().max(1.0),
        "{} vs {}",
        a.total,
        b.total
    );
    let d = ntlb_golden::case::deviation(
        &b.grad_ctx.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        &a.grad_ctx.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    );
    assert!(d.rel < 1e-5, "shared pass 1 gradient differs: {d:?}");
    assert!(a.scores.iter().zip(&b.scores).all(|(x, y)| (x - y).abs() < 1e-6));
    assert!(a.expl != 0.0 && a.grad_ctx.iter().any(|g| *g != 0.0));
}

#[test]
fn loss_scale_leaves_the_gradient_unchanged() {
    let device = Device::flex().autodiff();
    let clip = model(&device);
    let lay = layout(5, 4, ClassPosition::End);
    let ctx = lay.initial_context(&clip, 3);
    let imgs = Tensor::<4>::random([2, 3, 64, 64], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let feats = l2_normalize(clip.encode_image(imgs).detach());
    let run = |loss_scale| {
        let o = StepOptions {
            loss_scale,
            ..StepOptions::default()
        };
        step(&clip, &lay, &ctx, [4, 64], feats.clone(), &[1, 3], &LossConfig::default(), &o).unwrap()
    };
    let (a, b) = (run(1.0), run(1024.0));
    assert!(a.grad_ctx.iter().any(|g| *g != 0.0));
    assert_eq!(a.grad_ctx, b.grad_ctx, "a power-of-two scale must be exact");
    assert_eq!(a.total, b.total);
}

#[test]
fn forced_overflow_is_skipped_and_the_scale_backs_off() {
    use ntlb_prompt::scaler::{LossScaleConfig, ScaleMode};
    let r = Run::new(ClassPosition::Middle);
    // f32's largest power of two: the scaled gradient overflows.
    let forced = |min_log2| TrainConfig {
        loss_scale: LossScaleConfig {
            mode: ScaleMode::On,
            init_log2: 127,
            max_log2: 127,
            min_log2,
            ..LossScaleConfig::default()
        },
        optim: OptimConfig {
            epochs: 10,
            ..small_config().optim
        },
        ..small_config()
    };
    let train_in = |dir: &str, cfg: &TrainConfig| {
        train(
            &r.clip,
            &r.lay,
            &r.classes,
            &r.data,
            cfg,
            &r.tmp.path().join(dir),
            ("m", "sha"),
            StopAt::default(),
            |_, _| {},
        )
    };
    // Not allowed to back off: the overflow is real and stops the run, naming the scaler.
    let err = format!("{:#}", train_in("stuck", &forced(127)).unwrap_err());
    assert!(err.contains("non-finite gradient") && err.contains("scaling cures"), "{err}");
    // Allowed: the overflowing steps are skipped at ever half the scale, then training goes on.
    let p = train_in("scaled", &forced(-24)).unwrap();
    let sc = p.manifest.loss_scaler.expect("scaling was on");
    let total_steps = 10 * 2; // 10 epochs of 4 images in batches of 2
    assert!(sc.skipped > 0 && sc.skipped < total_steps, "{sc:?}");
    assert_eq!(sc.log2, 127 - sc.skipped as i32, "{sc:?}");
    assert_eq!(p.manifest.loss_curve.len() + sc.skipped, total_steps);
    assert!(p.ctx.iter().all(|v| v.is_finite()));
    // Off (the default on f32 models): no scaler state at all.
    let plain = train_in("plain", &small_config()).unwrap();
    assert!(plain.manifest.loss_scaler.is_none());
}
