//! Where a job runs, as the spec's `devices` key names it: [`Device`] (one
//! engine's device, `cpu` or `cuda:N`) and [`DeviceSpec`] (the key: a list
//! of devices or `cuda:all`), with their YAML text form.
//!
//! Invariants: parsing accepts exactly `cpu`, `cuda:N` (N a decimal GPU
//! index) and, for the whole key, `cuda:all`; anything else is an error that
//! names the accepted forms. Serializing writes the same text back, so a
//! spec round-trips. The list rules (not empty, no duplicates, no mix of CPU
//! and GPUs) are value rules of the spec (`src/job/validate.rs`); turning
//! the key into concrete GPUs needs the driver (`resolve.rs`).

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The word that names every GPU the driver reports.
const ALL_GPUS: &str = "cuda:all";

/// One engine's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Device {
    /// The CPU backend, on all the process's compute threads.
    Cpu,
    /// The GPU with this CUDA device index.
    Cuda(usize),
}

impl Device {
    /// Parses `cpu` or `cuda:N`.
    pub fn parse(text: &str) -> Result<Device, String> {
        if text == "cpu" {
            return Ok(Device::Cpu);
        }
        let index = text.strip_prefix("cuda:").filter(|n| {
            // Digits only: `usize::from_str` would also take a leading `+`.
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        });
        match index.map(str::parse) {
            Some(Ok(i)) => Ok(Device::Cuda(i)),
            Some(Err(_)) => Err(format!("GPU index in `{text}` is too large")),
            None if text == ALL_GPUS => Err(format!(
                "`{ALL_GPUS}` stands for the whole list: write `devices: {ALL_GPUS}`, not a list entry"
            )),
            None => Err(format!(
                "unknown device `{text}`; expected `cpu` or `cuda:N` (N a GPU index, e.g. `cuda:0`)"
            )),
        }
    }

    pub fn is_cuda(self) -> bool {
        matches!(self, Device::Cuda(_))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The spec's `devices` key, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// These devices, one engine each.
    List(Vec<Device>),
    /// Every GPU the CUDA driver reports (at least one).
    AllCuda,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec::List(vec![Device::Cpu])
    }
}

impl DeviceSpec {
    /// Whether the job needs the CUDA driver.
    pub fn wants_cuda(&self) -> bool {
        match self {
            DeviceSpec::List(list) => list.iter().any(|d| d.is_cuda()),
            DeviceSpec::AllCuda => true,
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::AllCuda => f.write_str(ALL_GPUS),
            DeviceSpec::List(list) => {
                let names: Vec<String> = list.iter().map(Device::to_string).collect();
                write!(f, "[{}]", names.join(", "))
            }
        }
    }
}

impl Serialize for Device {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Device {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        struct DeviceVisitor;
        impl Visitor<'_> for DeviceVisitor {
            type Value = Device;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`cpu` or `cuda:N`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Device, E> {
                Device::parse(v).map_err(E::custom)
            }
        }
        // Read as a string, like byte sizes, so an error points at the entry.
        d.deserialize_str(DeviceVisitor)
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DeviceSpec::AllCuda => s.serialize_str(ALL_GPUS),
            DeviceSpec::List(list) => {
                let mut seq = s.serialize_seq(Some(list.len()))?;
                for device in list {
                    seq.serialize_element(device)?;
                }
                seq.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DeviceSpec, D::Error> {
        // A list or one word: only `deserialize_any` can tell them apart.
        d.deserialize_any(DeviceSpecVisitor)
    }
}

struct DeviceSpecVisitor;

impl<'de> Visitor<'de> for DeviceSpecVisitor {
    type Value = DeviceSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "a list of devices (`[cpu]`, `[cuda:0, cuda:1]`) or `{ALL_GPUS}`"
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<DeviceSpec, E> {
        if v == ALL_GPUS {
            return Ok(DeviceSpec::AllCuda);
        }
        Err(E::custom(match Device::parse(v) {
            Ok(device) => format!("expected a list: write `devices: [{device}]`"),
            Err(_) => format!(
                "expected a list of devices (`[cpu]`, `[cuda:0, cuda:1]`) or `{ALL_GPUS}`, got `{v}`"
            ),
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DeviceSpec, A::Error> {
        let mut list = Vec::new();
        while let Some(device) = seq.next_element::<Device>()? {
            list.push(device);
        }
        Ok(DeviceSpec::List(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        assert_eq!(Device::parse("cpu"), Ok(Device::Cpu));
        assert_eq!(Device::parse("cuda:0"), Ok(Device::Cuda(0)));
        assert_eq!(Device::parse("cuda:12"), Ok(Device::Cuda(12)));
        for d in [Device::Cpu, Device::Cuda(0), Device::Cuda(7)] {
            assert_eq!(Device::parse(&d.to_string()), Ok(d));
        }
        assert_eq!(
            DeviceSpec::List(vec![Device::Cuda(0), Device::Cuda(1)]).to_string(),
            "[cuda:0, cuda:1]"
        );
        assert_eq!(DeviceSpec::AllCuda.to_string(), "cuda:all");
        assert_eq!(DeviceSpec::default().to_string(), "[cpu]");
    }

    #[test]
    fn other_words_are_refused_naming_the_accepted_forms() {
        for bad in [
            "gpu0", "CPU", "cuda", "cuda:", "cuda:-1", "cuda:+1", "cuda:a", " cpu", "cuda:0 ",
        ] {
            let e = Device::parse(bad).unwrap_err();
            assert!(e.contains("expected `cpu` or `cuda:N`"), "{bad}: {e}");
        }
        assert!(
            Device::parse("cuda:99999999999999999999999")
                .unwrap_err()
                .contains("too large")
        );
        assert!(
            Device::parse("cuda:all")
                .unwrap_err()
                .contains("write `devices: cuda:all`")
        );
    }

    #[test]
    fn the_key_serializes_to_its_text_form() {
        let list = DeviceSpec::List(vec![Device::Cpu]);
        assert_eq!(serde_json::to_string(&list).unwrap(), r#"["cpu"]"#);
        assert_eq!(
            serde_json::to_string(&DeviceSpec::AllCuda).unwrap(),
            r#""cuda:all""#
        );
        let back: DeviceSpec = serde_json::from_str(r#"["cuda:0","cuda:3"]"#).unwrap();
        assert_eq!(
            back,
            DeviceSpec::List(vec![Device::Cuda(0), Device::Cuda(3)])
        );
        assert!(DeviceSpec::AllCuda.wants_cuda() && !DeviceSpec::default().wants_cuda());
    }
}
