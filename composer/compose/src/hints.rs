//! Hints travel with errors: every library error type says what the user can do about it
//! (`hint()`), and the printer finds the first hint by walking the error's chain, so a
//! `.context()` added anywhere on the way up cannot drop one.

use std::error::Error;

pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(hint_of).or_else(|| error.chain().find_map(storage_problem))
}

fn hint_of(error: &(dyn Error + 'static)) -> Option<String> {
    if let Some(e) = error.downcast_ref::<composer_planner::BuildError>() {
        return e.hint();
    }
    if let Some(e) = error.downcast_ref::<composer_recipe::RecipeError>() {
        return e.hint().map(str::to_string);
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
    None
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
        "{what}: free space where the store or the output lives, or point --store (COMPOSE_STORE) or -o elsewhere"
    ))
}
