//! Which backend builds a recipe: chosen here, by its `[base] distro`, so that the planner names
//! no distribution. The settings hold what each backend is configured with (its mirrors).

use composer_distro::{Backend, Distributions, Services};
use composer_recipe::{Distro, Recipe};

use crate::settings::Settings;

impl Distributions for Settings {
    fn backend<'a>(&'a self, services: Services<'a>, recipe: &'a Recipe) -> Box<dyn Backend + 'a> {
        match recipe.base.distro {
            Distro::Debian => Box::new(composer_deb::backend::Debian::new(
                services,
                &self.mirrors,
                &recipe.base,
                &recipe.dir,
                &recipe.allowed_paths,
            )),
        }
    }
}
