use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::Context;
use composer_cache::SecretKey;

use crate::cli::KeyCommand;
use crate::printer::Printer;

pub fn run(command: KeyCommand, printer: &Printer) -> anyhow::Result<()> {
    match command {
        KeyCommand::Generate { name, output } => {
            let key = SecretKey::generate(&name)?;
            let path = output.unwrap_or_else(|| PathBuf::from(format!("{name}.secret")));
            // create_new: an existing key (perhaps the only copy) is never overwritten.
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).with_context(
                    || format!("writing the secret key {} (an existing file is never replaced)", path.display()),
                )?;
            file.write_all(key.to_file_text().as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the secret key {}", path.display()))?;
            if printer.json {
                return crate::printer::json_out(&crate::documents::KeyDocument {
                    secret_key_file: path,
                    public_key: key.public().to_string(),
                });
            }
            printer.status("Generated", &format!("secret key {} (keep it private)", path.display()));
            crate::out!("{}", key.public());
        }
    }
    Ok(())
}
