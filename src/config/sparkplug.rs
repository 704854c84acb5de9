//! `[telemetry] format` and `[telemetry.sparkplug]`: the Sparkplug B edge
//! node's keys (docs/telemetry.md).

use serde::{Deserialize, Serialize};

/// What telemetry publishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelemetryFormat {
    /// The JSON topics under `topic_prefix` (the default).
    #[default]
    Json,
    /// Only the Sparkplug B edge node.
    Sparkplug,
    /// Both, over two MQTT connections.
    Both,
}

impl TelemetryFormat {
    /// Whether the JSON topics are published.
    pub fn json(self) -> bool {
        matches!(self, Self::Json | Self::Both)
    }

    /// Whether the Sparkplug edge node runs.
    pub fn sparkplug(self) -> bool {
        matches!(self, Self::Sparkplug | Self::Both)
    }
}

/// `[telemetry.sparkplug]`
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SparkplugConfig {
    /// Sparkplug group id; empty = `gateway.site` (`default` when that is
    /// empty too).
    pub group_id: String,
    /// Sparkplug edge node id; empty = the gateway id.
    pub edge_node_id: String,
    /// Primary host application id: when set, the node waits for
    /// `spBv1.0/STATE/{primary_host_id}` to say online before its birth and
    /// births again when the host comes back. Empty = no primary host.
    pub primary_host_id: String,
}

impl SparkplugConfig {
    /// The group id with its default filled in.
    pub fn group(&self, site: &str) -> String {
        match (self.group_id.as_str(), site) {
            ("", "") => "default".into(),
            ("", site) => site.into(),
            (g, _) => g.into(),
        }
    }

    /// The edge node id with its default filled in.
    pub fn edge_node(&self, gateway_id: &str) -> String {
        if self.edge_node_id.is_empty() {
            gateway_id.into()
        } else {
            self.edge_node_id.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, TelemetryFormat};

    #[test]
    fn keys_parse_and_default() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.telemetry.format, TelemetryFormat::Json);
        assert!(c.telemetry.format.json() && !c.telemetry.format.sparkplug());
        assert_eq!(c.telemetry.sparkplug.group("plant-7"), "plant-7");
        assert_eq!(c.telemetry.sparkplug.group(""), "default");
        assert_eq!(c.telemetry.sparkplug.edge_node("gw-1"), "gw-1");
        let text = "[telemetry]\nformat = \"both\"\n\n[telemetry.sparkplug]\ngroup_id = \"g\"\nedge_node_id = \"n\"\nprimary_host_id = \"scada\"\n";
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.telemetry.format, TelemetryFormat::Both);
        assert_eq!(c.telemetry.sparkplug.group("plant-7"), "g");
        assert_eq!(c.telemetry.sparkplug.edge_node("gw-1"), "n");
        assert_eq!(c.telemetry.sparkplug.primary_host_id, "scada");
    }

    fn err(text: &str) -> (usize, String, String) {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Invalid {
                path,
                line,
                key,
                message,
            }) => {
                assert_eq!(path, "t.toml");
                (line, key, message)
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let (line, key, msg) = err("[telemetry]\nmqtt_url = \"\"\nformat = \"xml\"\n");
        assert_eq!((line, key.as_str()), (3, "telemetry.format"), "{msg}");
        let (line, key, _) =
            err("[telemetry]\n\n[telemetry.sparkplug]\n\nedge_node_id = \"a/b\"\n");
        assert_eq!(
            (line, key.as_str()),
            (5, "telemetry.sparkplug.edge_node_id")
        );
        let (line, key, _) = err("[telemetry.sparkplug]\ngroup_id = \"x+\"\n");
        assert_eq!((line, key.as_str()), (2, "telemetry.sparkplug.group_id"));
        let (line, key, _) = err("[telemetry.sparkplug]\nhost = \"x\"\n");
        assert_eq!(line, 2, "{key}");
    }
}
