//! Every dataset ntlb reads, described once: its sweep kind, the reference's name for it, the
//! folder of CoOp's download layout, where its splits and class names come from, CoOp's default
//! prompt and the published sizes. The sweep config, the readers, the dry-run estimate, the
//! report's order and the tests learn datasets from this table; a dataset in a layout ntlb
//! already reads is one entry here.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where a dataset's items and labels come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `split_zhou_<Name>.json` in the dataset folder (`{"train","val","test"}` lists of
    /// `[impath, label, classname]`), paths relative to `prefix` (a folder of the dataset
    /// folder; empty: the dataset folder itself).
    SplitFile { file: &'static str, prefix: &'static str },
    /// FGVCAircraft's official files: `variants.txt` (label = line index) and
    /// `images_variant_{train,val,test}.txt` (`<id> <variant words…>`), images `images/<id>.jpg`.
    AircraftVariants,
    /// ImageNet and its shifted variants: class folders ([`crate::variants`]), labelled through
    /// the sweep's class list.
    ClassFolders,
}

/// Where a dataset's class names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassRule {
    /// The split file's `classname` of each label, verbatim.
    SplitFile,
    /// The lines of `variants.txt`, verbatim.
    VariantsTxt,
    /// The sweep's ImageNet class list (`classes`).
    ImagenetList,
    /// The 200 wnids of the entry's `wnids` list, named as in the ImageNet list.
    ImagenetSubset,
}

/// Published sizes: the class count and the images of each split (Dassl's start-up line
/// `# classes / # train_x / # val / # test`); `None` where the set has no such split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    pub classes: usize,
    pub train: Option<usize>,
    pub val: Option<usize>,
    /// The images evaluated (ImageNet: its validation set, which the reference also uses as val).
    pub test: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// The sweep's `kind` and the result rows' `dataset`.
    pub name: &'static str,
    /// The reference's `DATASET.NAME` (its dataset registry and `CUSTOM_TEMPLATES` key).
    pub reference_name: &'static str,
    /// The dataset's folder in CoOp's `DATASETS.md` layout (under the data root).
    pub folder: &'static str,
    pub source: Source,
    pub classes: ClassRule,
    /// CoOp's zero-shot prompt for the set (`CUSTOM_TEMPLATES`), `{}` for the class name.
    pub prompt: &'static str,
    pub sizes: Sizes,
    /// Where the images are downloaded.
    pub images_from: &'static str,
    /// Where the split file is distributed (CoOp's Google Drive link), for split-file sets.
    pub split_from: Option<&'static str>,
}

/// The split a sweep evaluates: every split-file set is scored on `test`, as the reference does.
pub const EVAL_SPLIT: &str = "test";

const fn sizes(classes: usize, train: usize, val: usize, test: usize) -> Sizes {
    Sizes {
        classes,
        train: Some(train),
        val: Some(val),
        test,
    }
}

const fn eval_only(classes: usize, test: usize) -> Sizes {
    Sizes {
        classes,
        train: None,
        val: None,
        test,
    }
}

const PHOTO: &str = "a photo of a {}.";

/// The table: one line of `datasets!` per dataset, its `DatasetKind` variant and its spec.
/// The order is the report's column order (the paper's five, then CoOp's ten as its papers
/// list them).
macro_rules! datasets {
    ($($(#[$doc:meta])* $variant:ident => $spec:expr,)*) => {
        /// A dataset ntlb reads; everything about it is its [`DatasetSpec`] ([`DatasetKind::spec`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DatasetKind {
            $($(#[$doc])* $variant,)*
        }

        static SPECS: &[DatasetSpec] = &[$($spec,)*];

        impl DatasetKind {
            /// Every kind, in the table's order.
            pub const ALL: &'static [DatasetKind] = &[$(DatasetKind::$variant,)*];
        }
    };
}

datasets! {
    /// ImageNet: validation split (`images/val/<wnid>/`, `val/<wnid>/` or the NTLB reference's
    /// `data/raw/validation/<wnid>/`).
    Imagenet => DatasetSpec {
        name: "imagenet",
        reference_name: "ImageNet",
        folder: "imagenet",
        source: Source::ClassFolders,
        classes: ClassRule::ImagenetList,
        prompt: PHOTO,
        sizes: Sizes { classes: 1000, train: Some(1_281_167), val: None, test: 50_000 },
        images_from: "https://image-net.org (ILSVRC-2012 train and val)",
        split_from: None,
    },
    /// ImageNet-V2 matched-frequency: folders `0..999` named by class index.
    ImagenetV2 => DatasetSpec {
        name: "imagenet-v2",
        reference_name: "ImageNetV2",
        folder: "imagenetv2",
        source: Source::ClassFolders,
        classes: ClassRule::ImagenetList,
        prompt: PHOTO,
        sizes: eval_only(1000, 10_000),
        images_from: "https://github.com/modestyachts/ImageNetV2 (imagenetv2-matched-frequency.tar.gz)",
        split_from: None,
    },
    /// ImageNet-Sketch: `<wnid>/` folders (also under `sketch/` or `images/`).
    ImagenetSketch => DatasetSpec {
        name: "imagenet-sketch",
        reference_name: "ImageNetSketch",
        folder: "imagenet-sketch",
        source: Source::ClassFolders,
        classes: ClassRule::ImagenetList,
        prompt: PHOTO,
        sizes: eval_only(1000, 50_889),
        images_from: "https://github.com/HaohanWang/ImageNet-Sketch",
        split_from: None,
    },
    /// ImageNet-A: 200 `<wnid>/` folders, 200-way.
    ImagenetA => DatasetSpec {
        name: "imagenet-a",
        reference_name: "ImageNetA",
        folder: "imagenet-adversarial",
        source: Source::ClassFolders,
        classes: ClassRule::ImagenetSubset,
        prompt: PHOTO,
        sizes: eval_only(200, 7_500),
        images_from: "https://github.com/hendrycks/natural-adv-examples",
        split_from: None,
    },
    /// ImageNet-R: 200 `<wnid>/` folders, 200-way.
    ImagenetR => DatasetSpec {
        name: "imagenet-r",
        reference_name: "ImageNetR",
        folder: "imagenet-rendition",
        source: Source::ClassFolders,
        classes: ClassRule::ImagenetSubset,
        prompt: PHOTO,
        sizes: eval_only(200, 30_000),
        images_from: "https://github.com/hendrycks/imagenet-r",
        split_from: None,
    },
    /// Caltech101 (100 classes: no `BACKGROUND_Google`, no `Faces_easy`).
    Caltech101 => DatasetSpec {
        name: "caltech101",
        reference_name: "Caltech101",
        folder: "caltech-101",
        source: Source::SplitFile { file: "split_zhou_Caltech101.json", prefix: "101_ObjectCategories" },
        classes: ClassRule::SplitFile,
        prompt: PHOTO,
        sizes: sizes(100, 4_128, 1_649, 2_465),
        images_from: "http://www.vision.caltech.edu/Image_Datasets/Caltech101/101_ObjectCategories.tar.gz",
        split_from: Some("https://drive.google.com/file/d/1hyarUivQE36mY6jSomru6Fjd-JzwcCzN/view?usp=sharing"),
    },
    OxfordPets => DatasetSpec {
        name: "oxford-pets",
        reference_name: "OxfordPets",
        folder: "oxford_pets",
        source: Source::SplitFile { file: "split_zhou_OxfordPets.json", prefix: "images" },
        classes: ClassRule::SplitFile,
        prompt: "a photo of a {}, a type of pet.",
        sizes: sizes(37, 2_944, 736, 3_669),
        images_from: "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
        split_from: Some("https://drive.google.com/file/d/1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs/view?usp=sharing"),
    },
    /// StanfordCars: split paths are relative to the dataset folder (`cars_train/…`, `cars_test/…`).
    StanfordCars => DatasetSpec {
        name: "stanford-cars",
        reference_name: "StanfordCars",
        folder: "stanford_cars",
        source: Source::SplitFile { file: "split_zhou_StanfordCars.json", prefix: "" },
        classes: ClassRule::SplitFile,
        prompt: PHOTO,
        sizes: sizes(196, 6_509, 1_635, 8_041),
        images_from: "http://ai.stanford.edu/~jkrause/car196/ (cars_train.tgz, cars_test.tgz)",
        split_from: Some("https://drive.google.com/file/d/1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT/view?usp=sharing"),
    },
    OxfordFlowers => DatasetSpec {
        name: "oxford-flowers",
        reference_name: "OxfordFlowers",
        folder: "oxford_flowers",
        source: Source::SplitFile { file: "split_zhou_OxfordFlowers.json", prefix: "jpg" },
        classes: ClassRule::SplitFile,
        prompt: "a photo of a {}, a type of flower.",
        sizes: sizes(102, 4_093, 1_633, 2_463),
        images_from: "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
        split_from: Some("https://drive.google.com/file/d/1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT/view?usp=sharing"),
    },
    Food101 => DatasetSpec {
        name: "food101",
        reference_name: "Food101",
        folder: "food-101",
        source: Source::SplitFile { file: "split_zhou_Food101.json", prefix: "images" },
        classes: ClassRule::SplitFile,
        prompt: "a photo of {}, a type of food.",
        sizes: sizes(101, 50_500, 20_200, 30_300),
        images_from: "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)",
        split_from: Some("https://drive.google.com/file/d/1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl/view?usp=sharing"),
    },
    /// FGVCAircraft: the `data/` folder of fgvc-aircraft-2013b, renamed; no split JSON.
    FgvcAircraft => DatasetSpec {
        name: "fgvc-aircraft",
        reference_name: "FGVCAircraft",
        folder: "fgvc_aircraft",
        source: Source::AircraftVariants,
        classes: ClassRule::VariantsTxt,
        prompt: "a photo of a {}, a type of aircraft.",
        sizes: sizes(100, 3_334, 3_333, 3_333),
        images_from: "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz (its data/ folder)",
        split_from: None,
    },
    Sun397 => DatasetSpec {
        name: "sun397",
        reference_name: "SUN397",
        folder: "sun397",
        source: Source::SplitFile { file: "split_zhou_SUN397.json", prefix: "SUN397" },
        classes: ClassRule::SplitFile,
        prompt: PHOTO,
        sizes: sizes(397, 15_880, 3_970, 19_850),
        images_from: "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz",
        split_from: Some("https://drive.google.com/file/d/1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq/view?usp=sharing"),
    },
    Dtd => DatasetSpec {
        name: "dtd",
        reference_name: "DescribableTextures",
        folder: "dtd",
        source: Source::SplitFile { file: "split_zhou_DescribableTextures.json", prefix: "images" },
        classes: ClassRule::SplitFile,
        prompt: "{} texture.",
        sizes: sizes(47, 2_820, 1_128, 1_692),
        images_from: "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
        split_from: Some("https://drive.google.com/file/d/1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x/view?usp=sharing"),
    },
    Eurosat => DatasetSpec {
        name: "eurosat",
        reference_name: "EuroSAT",
        folder: "eurosat",
        source: Source::SplitFile { file: "split_zhou_EuroSAT.json", prefix: "2750" },
        classes: ClassRule::SplitFile,
        prompt: "a centered satellite photo of {}.",
        sizes: sizes(10, 13_500, 5_400, 8_100),
        images_from: "http://madm.dfki.de/files/sentinel/EuroSAT.zip",
        split_from: Some("https://drive.google.com/file/d/1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o/view?usp=sharing"),
    },
    /// UCF101: CoOp's middle frames (`UCF-101-midframes.zip`, also from CoOp's Drive).
    Ucf101 => DatasetSpec {
        name: "ucf101",
        reference_name: "UCF101",
        folder: "ucf101",
        source: Source::SplitFile { file: "split_zhou_UCF101.json", prefix: "UCF-101-midframes" },
        classes: ClassRule::SplitFile,
        prompt: "a photo of a person doing {}.",
        sizes: sizes(101, 7_639, 1_898, 3_783),
        images_from: "https://drive.google.com/file/d/10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O/view?usp=sharing (UCF-101-midframes.zip)",
        split_from: Some("https://drive.google.com/file/d/1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y/view?usp=sharing"),
    },
}

/// Where CoOp's `DATASETS.md` (every download link of the layouts above) is.
pub const COOP_DATASETS_MD: &str = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md";

impl DatasetKind {
    pub fn spec(self) -> &'static DatasetSpec {
        &SPECS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The kind a sweep config names (`kind = "oxford-pets"`).
    pub fn from_name(name: &str) -> Option<DatasetKind> {
        DatasetKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// Whether the set is read through a split list (a split file or FGVCAircraft's files).
    pub fn has_split_list(self) -> bool {
        !matches!(self.spec().source, Source::ClassFolders)
    }

    /// The kinds read through split lists: the ten of CoOp's benchmark besides ImageNet.
    pub fn split_list_kinds() -> impl Iterator<Item = DatasetKind> {
        DatasetKind::ALL.iter().copied().filter(|k| k.has_split_list())
    }
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for DatasetKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for DatasetKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DatasetKind, D::Error> {
        let name = String::deserialize(d)?;
        DatasetKind::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = DatasetKind::ALL.iter().map(|k| k.name()).collect();
            serde::de::Error::custom(format!("unknown dataset kind `{name}` (known: {})", known.join(", ")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names, folders and reference names are unique; the table's order is the enum's (the spec
    /// of a kind is found by its position).
    #[test]
    fn the_table_is_consistent() {
        assert_eq!(SPECS.len(), DatasetKind::ALL.len());
        for (i, k) in DatasetKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(DatasetKind::from_name(k.name()), Some(*k));
            assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{}\"", k.name()));
            assert_eq!(k.spec().prompt.matches("{}").count(), 1, "{k}");
            for other in &DatasetKind::ALL[..i] {
                let (a, b) = (k.spec(), other.spec());
                assert!(
                    a.name != b.name && a.folder != b.folder && a.reference_name != b.reference_name,
                    "{k} / {other}"
                );
            }
            assert_eq!(
                k.spec().split_from.is_some(),
                matches!(k.spec().source, Source::SplitFile { .. }),
                "{k}"
            );
        }
        let e = serde_json::from_str::<DatasetKind>("\"pets\"").unwrap_err().to_string();
        assert!(e.contains("unknown dataset kind `pets`") && e.contains("oxford-pets"), "{e}");
    }

    /// The sweep kinds of the ten CoOp sets in kebab case, and the eleven of the benchmark.
    #[test]
    fn the_benchmark_kinds() {
        let names: Vec<&str> = DatasetKind::split_list_kinds().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "caltech101",
                "oxford-pets",
                "stanford-cars",
                "oxford-flowers",
                "food101",
                "fgvc-aircraft",
                "sun397",
                "dtd",
                "eurosat",
                "ucf101"
            ]
        );
    }
}
