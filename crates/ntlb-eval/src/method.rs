//! What produced a result row. Rows, tables and baselines hold it as the strings they have
//! always held (`zero-shot`, `zero-shot-ensemble-<name>`, `coop`, `coop-init`, the CoOp ones with
//! ` name_score=<mean|min>` after them), so files written before keep reading.

use std::fmt;

use ntlb_prompt::objective::NameScore;

/// A row's method. λ and the seed are columns of their own.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// One template (the row's `template`).
    ZeroShot,
    /// An ensemble of templates, by its name in `[zero_shot] ensembles`.
    Ensemble(String),
    /// CoOp's starting context, before any step, of a run trained with this class-name score.
    CoopInit(NameScore),
    /// CoOp's learned context, trained with this class-name score aggregation.
    Coop(NameScore),
}

const ENSEMBLE: &str = "zero-shot-ensemble-";
const AGG: &str = " name_score=";

/// The summary-table name of CoOp's start: one line whatever the λ or the aggregation.
pub const COOP_START: &str = "CoOp start: random context, before training";

impl Method {
    /// The inverse of `to_string`; `None` for a string no method writes.
    pub fn parse(s: &str) -> Option<Method> {
        if s == "zero-shot" {
            return Some(Method::ZeroShot);
        }
        if let Some(name) = s.strip_prefix(ENSEMBLE) {
            return Some(Method::Ensemble(name.to_string()));
        }
        let (base, agg) = match s.split_once(AGG) {
            Some((b, a)) => (b, a.parse().ok().filter(|a: &NameScore| !a.is_max())?),
            None => (s, NameScore::Max),
        };
        match base {
            "coop" => Some(Method::Coop(agg)),
            "coop-init" => Some(Method::CoopInit(agg)),
            _ => None,
        }
    }

    /// CoOp's learned context with the paper's score (max).
    pub const COOP: Method = Method::Coop(NameScore::Max);

    /// Either CoOp method: its aggregation.
    pub fn name_score(&self) -> Option<NameScore> {
        match self {
            Method::Coop(a) | Method::CoopInit(a) => Some(*a),
            _ => None,
        }
    }

    pub fn is_zero_shot(&self) -> bool {
        matches!(self, Method::ZeroShot | Method::Ensemble(_))
    }

    /// The summary-table name of a row of this method at `lambda` (CoOp rows).
    pub fn label(&self, lambda: Option<f64>) -> String {
        match self {
            Method::ZeroShot => "zero-shot, single template: mean".to_string(),
            Method::Ensemble(name) => format!("zero-shot, ensemble of {name} templates"),
            Method::CoopInit(_) => COOP_START.to_string(),
            Method::Coop(agg) => {
                let tag = if agg.is_max() {
                    String::new()
                } else {
                    format!(", name score = {agg}")
                };
                match lambda.unwrap_or(0.0) {
                    l if l == 0.0 => format!("CoOp{tag} (λ = 0)"),
                    l => format!("CoOp + explainability{tag} (λ = {l})"),
                }
            }
        }
    }

    /// Where a summary line of this method at `lambda` goes: zero-shot first, then CoOp's start,
    /// then CoOp by increasing λ (numerically: 3 before 10); ties by label.
    pub fn order(&self, lambda: Option<f64>) -> (u8, f64) {
        match self {
            Method::ZeroShot | Method::Ensemble(_) => (0, 0.0),
            Method::CoopInit(_) => (1, 0.0),
            Method::Coop(_) => (2, lambda.unwrap_or(0.0)),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, agg) = match self {
            Method::ZeroShot => return f.write_str("zero-shot"),
            Method::Ensemble(name) => return write!(f, "{ENSEMBLE}{name}"),
            Method::CoopInit(a) => ("coop-init", a),
            Method::Coop(a) => ("coop", a),
        };
        if agg.is_max() {
            f.write_str(base)
        } else {
            write!(f, "{base}{AGG}{agg}")
        }
    }
}

/// A method against the string rows hold (`r.method == "coop"`).
impl PartialEq<&str> for Method {
    fn eq(&self, other: &&str) -> bool {
        Method::parse(other).as_ref() == Some(self)
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
        let s = String::deserialize(d)?;
        Method::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown method `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_through_the_strings_rows_hold() {
        for s in [
            "zero-shot",
            "zero-shot-ensemble-all",
            "zero-shot-ensemble-80",
            "coop",
            "coop-init",
            "coop name_score=mean",
            "coop-init name_score=min",
        ] {
            let m = Method::parse(s).unwrap_or_else(|| panic!("{s}"));
            assert_eq!(m.to_string(), s);
        }
        assert_eq!(Method::parse("coop name_score=mean"), Some(Method::Coop(NameScore::Mean)));
        // The paper's aggregation is written without a tag: a tagged max is no method's string.
        for bad in ["coop name_score=max", "coop name_score=median", "CoOp", "", "zero-shot-x"] {
            assert_eq!(Method::parse(bad), None, "{bad}");
        }
        assert_eq!(Method::COOP.label(Some(10.0)), "CoOp + explainability (λ = 10)");
        assert_eq!(Method::Coop(NameScore::Min).label(Some(0.0)), "CoOp, name score = min (λ = 0)");
        assert_eq!(Method::Ensemble("all".into()).label(None), "zero-shot, ensemble of all templates");
        assert!(Method::COOP.order(Some(3.0)) < Method::COOP.order(Some(10.0)));
        assert!(Method::CoopInit(NameScore::Mean).order(None) < Method::COOP.order(Some(0.0)));
    }
}
