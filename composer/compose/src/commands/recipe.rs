use composer_recipe::Recipe;
use composer_recipe::extend::Chain;

use crate::cli::RecipeCommand;
use crate::printer::Printer;
use crate::settings::Settings;

pub fn run(command: RecipeCommand, settings: &Settings, printer: &Printer) -> anyhow::Result<()> {
    match command {
        RecipeCommand::Show { recipe } => {
            // Only a recipe that loads is shown: what it means is then what a build would use,
            // and a file that is no recipe (a link to a secret) has its errors without its lines.
            Recipe::load_allowing(&recipe, &settings.allow_paths)?;
            let chain = Chain::load(&recipe, &settings.allow_paths)?;
            let merged = chain.merged()?;
            let extends = chain.files().skip(1).map(std::path::Path::to_path_buf).collect::<Vec<_>>();
            if printer.json {
                let (effective, origins) = composer_recipe::show::json(&chain, &merged);
                return crate::printer::json_out(&crate::documents::RecipeShowDocument {
                    recipe,
                    extends,
                    effective,
                    origins,
                });
            }
            let through = match extends.is_empty() {
                true => String::new(),
                false => {
                    let names: Vec<String> =
                        extends.iter().map(|p| composer_recipe::extend::printable(&p.display().to_string())).collect();
                    format!(", which extends {}", names.join(", then "))
                }
            };
            crate::out!(
                "# The effective recipe of {}{through}: each value with the file and line it was written at.\n{}",
                composer_recipe::extend::printable(&recipe.display().to_string()),
                composer_recipe::show::annotated_toml(&chain, &merged)
            );
        }
    }
    Ok(())
}
