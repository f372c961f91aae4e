//! How the planner tells the binary what it is doing. Only the binary draws progress bars.

pub use composer_distro::Notes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Download,
    Unpack,
    Layers,
}

/// `note` (what was chosen, for `-v`) comes from [`Notes`], which a backend reports to as well.
pub trait Reporter: Notes {
    fn start(&self, _phase: Phase, _total: u64) {}
    fn advance(&self, _phase: Phase, _n: u64) {}
    fn finish(&self, _phase: Phase) {}
    /// Something the user should know even when not asking for detail.
    fn warn(&self, message: &str) {
        self.note(message);
    }
    /// A line worth showing by default: what is about to take time.
    fn status(&self, _label: &str, _message: &str) {}
    /// A step is done (run now, or found done), as it happens.
    fn step(&self, _report: &StepReport, _seconds: f64) {}
}

pub struct NoReporter;
impl Notes for NoReporter {}
impl Reporter for NoReporter {}

/// One step of a build, as planned or run.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct StepReport {
    pub step: &'static str,
    pub platform: Option<String>,
    pub name: String,
    pub cached: bool,
    /// Bytes to download (plan) or downloaded (build).
    pub bytes: u64,
    /// The cache the result came from (build) or would come from (plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub substituted: Option<String>,
    /// The platform whose root a build ran on with cross compilers for its own (`[cross]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cross: Option<String>,
}
