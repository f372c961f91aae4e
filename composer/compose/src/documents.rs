//! The `--json` documents, one type per command, each with a JSON Schema generated from it
//! (`compose json-schema NAME`, published in docs/json/; a test keeps them current and
//! validates every command's output against its schema).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Serialize;

/// Every document carries the version of its shape.
#[derive(Serialize, JsonSchema)]
pub struct Versioned<T> {
    pub schema_version: u64,
    #[serde(flatten)]
    pub body: T,
}

#[derive(Serialize, JsonSchema)]
pub struct PlatformDigest {
    /// `os/architecture[/variant]`.
    pub platform: String,
    pub digest: String,
}

/// `compose build --json`.
#[derive(Serialize, JsonSchema)]
pub struct BuildDocument {
    /// The image index's digest.
    pub index: String,
    pub manifests: Vec<PlatformDigest>,
    /// For a docker-archive output, the digests it is known by (it holds neither of the above).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub docker_archive: Option<DockerArchiveDigests>,
    pub output: String,
    pub lock_written: bool,
    pub steps: Vec<composer_planner::StepReport>,
    pub cached_steps: usize,
    pub substituted_steps: usize,
    pub total_steps: usize,
    pub downloaded_bytes: u64,
    pub seconds: f64,
}

/// What a docker-archive is known by.
#[derive(Serialize, JsonSchema)]
pub struct DockerArchiveDigests {
    /// The image config's digest: the image ID `docker load` and `docker images` show.
    pub image_id: String,
    /// The manifest skopeo and podman make from the archive (`skopeo inspect` shows it).
    pub manifest: String,
}

#[derive(Serialize, JsonSchema)]
pub struct LockedPlatform {
    pub platform: String,
    pub packages: usize,
}

/// `compose lock --json`.
#[derive(Serialize, JsonSchema)]
pub struct LockDocument {
    pub lock: PathBuf,
    /// The lock and every wheel lock were current already: nothing was written.
    pub unchanged: bool,
    /// `add NAME VERSION [platform]`, `update NAME OLD -> NEW [platform]`, `remove ...`.
    pub changes: Vec<String>,
    pub platforms: Vec<LockedPlatform>,
}

/// `compose lock --check --json`.
#[derive(Serialize, JsonSchema)]
pub struct OutdatedDocument {
    pub outdated: Vec<String>,
}

/// `compose store info --json`.
#[derive(Serialize, JsonSchema)]
pub struct StoreInfoDocument {
    pub path: PathBuf,
    pub info: composer_store::StoreInfo,
}

/// `compose store pin --json`.
#[derive(Serialize, JsonSchema)]
pub struct PinDocument {
    pub lock: PathBuf,
    pub inputs: usize,
    pub pinned: bool,
}

/// `compose key generate --json`.
#[derive(Serialize, JsonSchema)]
pub struct KeyDocument {
    pub secret_key_file: PathBuf,
    /// `NAME:BASE64`, for `--trusted-key`.
    pub public_key: String,
}

/// `compose wheels index --json`.
#[derive(Serialize, JsonSchema)]
pub struct WheelsIndexDocument {
    pub index: PathBuf,
    pub projects: usize,
    pub wheels: usize,
}

/// `compose recipe show --json`.
#[derive(Serialize, JsonSchema)]
pub struct RecipeShowDocument {
    /// The recipe as named.
    pub recipe: PathBuf,
    /// The recipes it extends, nearest first, each as named (joined to the directory of the
    /// recipe naming it).
    pub extends: Vec<PathBuf>,
    /// The effective recipe, every base merged in: the keys and values a recipe without `extends`
    /// would hold (relative paths are relative to `recipe`'s directory; defaults not written).
    pub effective: serde_json::Value,
    /// Where each value of `effective` (every list and every item, not the tables) was written.
    pub origins: Vec<composer_recipe::show::Origin>,
}

#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

/// What any command prints under `--json` when it fails.
#[derive(Serialize, JsonSchema)]
pub struct ErrorDocument {
    pub error: ErrorBody,
}

/// Every published schema, by name.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn schema<T: JsonSchema>() -> serde_json::Value {
        schemars::schema_for!(Versioned<T>).to_value()
    }
    vec![
        ("build", schema::<BuildDocument>()),
        ("plan", schema::<composer_planner::PlanDocument>()),
        ("lock", schema::<LockDocument>()),
        ("lock-check", schema::<OutdatedDocument>()),
        ("inspect", schema::<composer_oci::inspect::ImageReport>()),
        ("push", schema::<composer_oci::push::PushReport>()),
        ("bundle", schema::<composer_cache::push::PushStats>()),
        ("store-push", schema::<composer_cache::push::PushStats>()),
        ("store-import", schema::<composer_cache::bundle::ImportReport>()),
        ("store-info", schema::<StoreInfoDocument>()),
        ("store-verify", schema::<composer_store::VerifyReport>()),
        ("store-gc", schema::<composer_store::GcReport>()),
        ("store-pin", schema::<PinDocument>()),
        ("key-generate", schema::<KeyDocument>()),
        ("wheels-index", schema::<WheelsIndexDocument>()),
        ("recipe-show", schema::<RecipeShowDocument>()),
        ("error", schema::<ErrorDocument>()),
    ]
}
