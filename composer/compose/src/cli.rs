use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// composer: declarative, reproducible OCI images from a recipe, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "compose", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Json,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print what each step does.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Print a machine-readable JSON summary on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// How progress shows on stderr: bars on a terminal and lines elsewhere (auto), one line per
    /// finished step (plain, for CI logs), or one JSON object per event (json, for tools).
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Never use the network; fail, naming what is missing, if the store lacks something.
    #[arg(long, global = true, env = crate::env_vars::COMPOSE_OFFLINE, value_parser = clap::builder::FalseyValueParser::new())]
    pub offline: bool,
    /// The store directory [env: COMPOSE_STORE; default: $XDG_CACHE_HOME/compose].
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Point mirror NAME at URL (repeatable); wins over environment, config and apt sources.
    #[arg(long = "mirror", global = true, value_name = "NAME=URL")]
    pub mirrors: Vec<String>,
    /// Let a recipe's local files (`[[files]] source`, `[[sources]] path`) come from DIR too, not
    /// only from the recipe's own directory (repeatable).
    #[arg(long = "allow-path", global = true, value_name = "DIR")]
    pub allow_paths: Vec<PathBuf>,
    /// Point Python index NAME at URL (repeatable); wins over environment, config, pip and uv.
    #[arg(long = "index", global = true, value_name = "NAME=URL")]
    pub indexes: Vec<String>,
    /// Take step results and inputs from this cache, oci://HOST[:PORT]/REPO or dir:PATH
    /// (repeatable, asked in order) [env: COMPOSE_CACHE; config: [cache] substituters].
    #[arg(long = "cache", global = true, value_name = "REF")]
    pub caches: Vec<String>,
    /// Use cached results signed by this public key, NAME:BASE64 (repeatable; adds to
    /// COMPOSE_TRUSTED_KEYS and the config's [cache] trusted-keys).
    #[arg(long = "trusted-key", global = true, value_name = "KEY")]
    pub trusted_keys: Vec<String>,
    /// Log in to registries with these credentials instead of those in the auth files.
    #[arg(long, global = true, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Allow plain HTTP to this registry host[:port] (loopback hosts always may; repeatable).
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Trust the CA certificates (*.crt) in DIR for registries, besides the system's and those
    /// in /etc/containers/certs.d/HOST/.
    #[arg(long = "cert-dir", global = true, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the image a recipe describes.
    #[command(after_help = "Examples:\n  \
        compose build recipes/debian-python.toml\n  \
        compose build recipes/debian-python.toml -o oci-archive:debian-python.tar\n  \
        compose build recipes/debian-python.toml --platform linux/amd64 -o docker-archive:image.tar\n  \
        compose build app.toml --push localhost:5000/team/app:v1\n  \
        compose build app.toml --cache oci://localhost:5000/team/cache --trusted-key ci:BASE64")]
    Build(BuildArgs),
    /// List every step of a build as cached or not, with download sizes; builds nothing.
    #[command(after_help = "Examples:\n  compose plan recipes/python-app.toml\n  \
        compose --json plan recipes/python-app.toml | jq '.steps[] | select(.cached | not)'\n  \
        compose plan app.toml --cache dir:/srv/cache --trusted-key ci:BASE64")]
    Plan(PlanArgs),
    /// Resolve the recipe and write `<recipe>.lock` beside it, keeping locked versions that
    /// still fit unless told to upgrade.
    #[command(after_help = "Examples:\n  compose lock recipes/debian-python.toml\n  \
        compose lock recipes/debian-python.toml --upgrade\n  compose lock recipes/debian-python.toml --upgrade-package openssl\n  \
        compose lock recipes/debian-python.toml --check")]
    Lock(LockArgs),
    /// Show an image (OCI layout, oci-archive, docker-archive): its digest, each platform's
    /// config and layers, sizes and the packages each layer holds.
    #[command(after_help = "Examples:\n  compose inspect out/debian-python\n  compose inspect oci:out/app:v2\n  \
        compose inspect docker-archive:image.tar\n  compose --json inspect oci-archive:image.tar | jq .manifests[].platform")]
    Inspect(InspectArgs),
    /// Inspect, verify and clean the store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Python wheel sets: publish them as an index.
    #[command(subcommand)]
    Wheels(WheelsCommand),
    /// Signing keys for shared caches.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Push an image (an OCI layout or oci-archive:FILE) to a registry, digests preserved.
    #[command(after_help = "Examples:\n  compose push out/debian-python localhost:5000/team/debian-python:latest\n  \
        compose push oci-archive:image.tar localhost:5000/team/app --creds user:password")]
    Push(PushArgs),
    /// Write one archive with everything recipes' builds need on a machine without network:
    /// inputs (release files as signed, packages, wheels, sources) and the signed step results.
    #[command(
        after_help = "Examples:\n  compose bundle recipes/python-app.toml -o app.bundle --signing-key ci.secret\n  \
        compose bundle recipes/debian-python.toml -o inputs.bundle --inputs-only\n  \
        (elsewhere) compose store import app.bundle --trusted-key ci:BASE64 --locks-to recipes"
    )]
    Bundle(BundleArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Examples:\n  compose completions bash > /etc/bash_completion.d/compose\n  \
                            compose completions zsh > \"${fpath[1]}/_compose\"")]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Recipes: what one means once the recipes it extends are merged in.
    #[command(subcommand)]
    Recipe(RecipeCommand),
    /// Print the JSON Schema of recipes, for editors (taplo, Even Better TOML) to complete and
    /// check recipe keys.
    RecipeSchema,
    /// Print the JSON Schema of a command's `--json` document (build, plan, lock, inspect,
    /// store-gc, error, ...), or write them all into DIR with --out.
    JsonSchema {
        /// The document's name; without it, the names are listed.
        name: Option<String>,
        /// Write every schema into DIR as NAME.schema.json.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Write the man pages (compose.1 and one per subcommand) into DIR.
    Man {
        /// Where the pages go, e.g. /usr/local/share/man/man1.
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The recipes (built already, with their locks).
    #[arg(required = true)]
    pub recipes: Vec<PathBuf>,
    /// The archive to write (replaced whole, or left as it was).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Only the inputs: the other machine runs every step itself from them.
    #[arg(long)]
    pub inputs_only: bool,
    /// The secret key that signs the step results and the lock files; optional with
    /// --inputs-only, whose lock files are then unsigned and refused by `store import
    /// --locks-to` [env: COMPOSE_SIGNING_KEY; config: [cache] signing-key].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// An OCI image layout directory (as `compose build` writes) or `oci-archive:FILE`.
    pub source: String,
    /// HOST[:PORT]/REPOSITORY[:TAG]; the tag defaults to the layout's.
    pub reference: String,
}

#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Print the effective recipe, the recipes it `extends` merged in, as TOML with the file and
    /// line each value was written at (a recipe without `extends` itself, placed beside RECIPE),
    /// or with --json as the effective recipe and a list of origins.
    #[command(after_help = "Examples:\n  compose recipe show recipes/python-musl.toml\n  \
        compose --json recipe show recipes/python-musl-app.toml | jq '.origins[] | select(.pointer == \"/image/platforms\")'")]
    Show {
        /// The recipe file.
        recipe: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a new Ed25519 secret key (mode 0600) and print its public key as NAME:BASE64, for
    /// `--trusted-key` on the machines that use what it signs.
    #[command(after_help = "Example:\n  compose key generate ci-2026 -o ci.secret   # prints ci-2026:BASE64")]
    Generate {
        /// Whose key it is (letters, digits, `.`, `-`, `_`); signatures carry it.
        name: String,
        /// The secret key file to write; never overwritten [default: NAME.secret].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WheelsCommand {
    /// Write a static wheel index (PEP 503 HTML, PEP 691 JSON, PEP 658 metadata) of a recipe's
    /// wheels, all platforms, or of every wheel in the store. Replaces OUT atomically.
    Index {
        /// The index directory to write (install with `--index-url file://OUT/simple`).
        out: PathBuf,
        /// Publish this recipe's locked wheels (fetching any the store lacks) instead of the
        /// whole store's.
        #[arg(long)]
        recipe: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The recipe (recipe.toml); its lock is read or written beside it.
    pub recipe: PathBuf,
    /// Where to write: a directory (OCI layout; default ./out/<name>), `oci-archive:FILE` or
    /// `docker-archive:FILE`.
    #[arg(short, long)]
    pub output: Option<String>,
    /// Build only this platform, e.g. linux/arm64 (repeatable); a docker-archive needs exactly
    /// one unless the recipe has one.
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
    /// The image's tag, instead of the recipe's; repeat it for several (each names the image in
    /// the output, and each is pushed by --push).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A label in the image config, KEY=VALUE, over the recipe's (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// An annotation on the image's manifests and index, KEY=VALUE, over the recipe's
    /// (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Fail if the lock file is missing or does not cover the recipe.
    #[arg(long)]
    pub locked: bool,
    /// When the recipe changed and its lock is resolved again, accept a signed Release older
    /// than the lock's (see `compose lock --allow-downgrade`).
    #[arg(long, conflicts_with = "locked")]
    pub allow_downgrade: bool,
    /// Keep the build directory of a failed build step (its path is printed).
    #[arg(long)]
    pub keep_failed: bool,
    /// When a build step fails, open a shell in its sandbox (its root, sources, build and output
    /// directories and environment), as melange's debug mode does; implies --keep-failed.
    #[arg(long)]
    pub debug_shell: bool,
    /// After the build, hand the image to the local podman (else Docker) through its own
    /// `load`: one platform, the one chosen or this machine's.
    #[arg(long)]
    pub load: bool,
    /// After the build, push the image to this registry: HOST[:PORT]/REPOSITORY[:TAG] (the tag
    /// defaults to the recipe's).
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// After the build, push its results and inputs to this cache, signed.
    #[arg(long, value_name = "REF")]
    pub cache_to: Option<String>,
    /// The secret key that signs what is pushed [env: COMPOSE_SIGNING_KEY; config: [cache]
    /// signing-key].
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The recipe to plan.
    pub recipe: PathBuf,
    /// Plan only this platform (repeatable).
    #[arg(long = "platform", value_name = "PLATFORM")]
    pub platforms: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The recipe whose lock (RECIPE.lock, beside it) is written.
    pub recipe: PathBuf,
    /// Take the newest version of every package (and resolve the wheel sets again); without it,
    /// every locked version that still fits is kept.
    #[arg(long, conflicts_with = "upgrade_packages")]
    pub upgrade: bool,
    /// Take the newest version of this package, keep the rest (repeatable).
    #[arg(long = "upgrade-package", value_name = "NAME")]
    pub upgrade_packages: Vec<String>,
    /// Write nothing: report which locked packages the mirror has newer versions of.
    #[arg(long, conflicts_with_all = ["upgrade", "upgrade_packages"])]
    pub check: bool,
    /// Accept a signed Release older than the one the lock was made from (a mirror rolled back
    /// on purpose); without it such a Release is refused as a replay.
    #[arg(long)]
    pub allow_downgrade: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// DIR or DIR:TAG (an OCI layout), oci:DIR[:TAG], oci-archive:FILE[:TAG],
    /// docker-archive:FILE, or docker://HOST[:PORT]/REPO[:TAG] (a registry).
    pub image: String,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Show where the store is and what it holds.
    Info,
    /// Rehash every object and check every reference.
    Verify {
        /// Delete what fails the check (the next build recreates it).
        #[arg(long)]
        repair: bool,
    },
    /// Delete what no recent action refers to, keeping the inputs of every lock used within the
    /// age limit or pinned. Waits for running builds.
    Gc {
        /// Keep action entries used within this many days.
        #[arg(long, default_value_t = 30)]
        max_age_days: u64,
        /// Delete everything not in use.
        #[arg(long)]
        all: bool,
        /// Report what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
    },
    /// Keep the inputs of RECIPE's lock (packages, wheels, sources, release files) through
    /// every `gc`, whatever its age, as a Nix GC root does.
    Pin {
        /// The recipe whose lock's inputs are kept.
        recipe: PathBuf,
        /// Remove the pin instead: the inputs are kept while the lock is used, as for any other.
        #[arg(long)]
        remove: bool,
    },
    /// Add a bundle (`compose bundle`) to the store: checked whole first (every digest, every
    /// signature against the trusted keys), refused whole if anything is wrong.
    Import {
        /// The bundle file.
        file: PathBuf,
        /// Write the lock files the bundle carries (`recipe.lock`, pylocks) into DIR, beside the
        /// recipes: only if a trusted key signed them and each has a name compose gives a lock;
        /// a different file already there is never replaced.
        #[arg(long, value_name = "DIR")]
        locks_to: Option<PathBuf>,
    },
    /// Push the step results and inputs of recipes' builds to a cache, signed, uploading only
    /// what the cache lacks.
    Push {
        /// oci://HOST[:PORT]/REPO or dir:PATH.
        reference: String,
        /// A recipe whose build to push (repeatable; built already, with its lock).
        #[arg(long = "recipe", required = true, value_name = "RECIPE")]
        recipes: Vec<PathBuf>,
        /// The secret key that signs the results [env: COMPOSE_SIGNING_KEY; config: [cache]
        /// signing-key].
        #[arg(long, value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand and every argument says what it is in `--help`.
    #[test]
    fn every_command_and_argument_is_described() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", command.get_name());
            if command.get_about().is_none() {
                missing.push(path.clone());
            }
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{}>", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "undescribed: {missing:?}");
    }
}
