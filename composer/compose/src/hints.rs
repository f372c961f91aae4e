//! Hints travel with errors: every library error type says what the user can do about it
//! (`hint()`), and the printer finds the first hint by walking the error's chain, so a
//! `.context()` added anywhere on the way up cannot drop one.

use std::error::Error;

pub fn hint(error: &anyhow::Error) -> Option<String> {
    error
        .chain()
        .find_map(hint_of)
        .map(|hint| hint + &settings_hint(error))
        .or_else(|| error.chain().find_map(storage_problem))
}

/// The setting that points at what is missing, for the errors whose fix may be one: the library
/// crates say what to install; only the binary knows its flags and variables.
fn settings_hint(error: &anyhow::Error) -> String {
    use crate::env_vars;
    for cause in error.chain() {
        if let Some(composer_planner::BuildError::NoSandbox) = cause.downcast_ref() {
            return format!(", or point {} at it", env_vars::COMPOSE_BWRAP);
        }
        let no_uv = matches!(cause.downcast_ref(), Some(composer_wheels::WheelError::NoUv))
            || matches!(
                cause.downcast_ref(),
                Some(composer_planner::BuildError::Wheels(composer_wheels::WheelError::NoUv))
            );
        if no_uv {
            return format!(", or point {} at it", env_vars::COMPOSE_UV);
        }
        if let Some(composer_store::StoreError::NotAStore { .. }) = cause.downcast_ref() {
            return format!(" (--store or {})", env_vars::COMPOSE_STORE);
        }
    }
    String::new()
}

fn hint_of(error: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = error.downcast_ref::<composer_planner::BuildError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_recipe::RecipeError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_deb::DebError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_wheels::WheelError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_oci::OciError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_store::StoreError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_cache::CacheError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_client::FetchError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_store::userfile::UserFileError>() {
        return e.hint();
    }
    if let Some(refused) = error.downcast_ref::<std::io::Error>().and_then(composer_store::staging::NotReplaceable::of)
    {
        return Some(refused.hint());
    }
    None
}

/// An error and its causes on one line, for a warning.
pub fn one_line(error: &anyhow::Error) -> String {
    composer_store::error_chain(error.as_ref())
}

/// A full disk, an exceeded quota or a read-only filesystem, wherever in the chain it surfaced.
fn storage_problem(error: &(dyn Error + 'static)) -> Option<String> {
    let io = error.downcast_ref::<std::io::Error>()?;
    let what = match io.raw_os_error() {
        Some(28) => "the disk is full",
        Some(122) => "the disk quota is exceeded",
        Some(30) => "the filesystem is read-only",
        _ => return None,
    };
    Some(format!(
        "{what}: `compose store gc` removes what no recent build uses; else free space where the store or the \
         output lives, or point --store (COMPOSE_STORE) or -o elsewhere"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_survives_context_and_names_the_setting_only_the_binary_knows() {
        let error = anyhow::Error::new(composer_planner::BuildError::NoSandbox).context("building x").context("more");
        let said = hint(&error).expect("a hint");
        assert!(said.contains("bubblewrap") && said.contains(crate::env_vars::COMPOSE_BWRAP), "{said}");
        let wrapped = anyhow::Error::new(composer_planner::BuildError::Wheels(composer_wheels::WheelError::NoUv));
        assert!(hint(&wrapped).unwrap().contains(crate::env_vars::COMPOSE_UV));
        let full = anyhow::Error::new(std::io::Error::from_raw_os_error(28)).context("writing a layer");
        assert!(hint(&full).unwrap().contains("disk is full") && hint(&full).unwrap().contains("compose store gc"));
        assert_eq!(hint(&anyhow::anyhow!("no hint here")), None);
    }
}
