//! Where a registry's credentials may go: the token service a registry's challenge names is
//! data from the network, so `--creds` follow it only over HTTPS, to loopback, or to a host the
//! user named with `--insecure-registry`.

use super::Withheld;

/// A loopback address, or `localhost`; a name that only starts like one (`127.example.test`)
/// is not.
pub(super) fn is_loopback(host: &str) -> bool {
    let name = host_name(host);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host` without its port.
fn host_name(authority: &str) -> &str {
    match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Whether plain HTTP may carry credentials to `authority` (`host[:port]`): a loopback host, or
/// one the user named with `--insecure-registry` (a name without a port covers every port).
pub(super) fn plain_http_allowed(authority: &str, insecure_hosts: &[String]) -> bool {
    is_loopback(authority) || insecure_hosts.iter().any(|h| h == authority || h == host_name(authority))
}

/// Whether the credentials for `registry` (`host[:port]`) may go to `url`, a token service its
/// challenge names: over HTTPS anywhere (the server's certificate is checked), over plain HTTP
/// only to a loopback host, a host named with `--insecure-registry`, or the registry's own host
/// when that is itself named insecure. `Err` says why not.
pub fn credentials_may_go_to(registry: &str, url: &str, insecure_hosts: &[String]) -> Result<(), Withheld> {
    let (scheme, rest) = url.split_once("://").ok_or(Withheld::NotAUrl)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.is_empty() {
        return Err(Withheld::NoHost);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if plain_http_allowed(authority, insecure_hosts) => Ok(()),
        "http"
            if host_name(authority) == host_name(registry)
                && insecure_hosts.iter().any(|h| h == registry || h == host_name(registry)) =>
        {
            Ok(())
        }
        "http" => Err(Withheld::PlainHttp(authority.to_string())),
        other => Err(Withheld::NotHttps(other.to_string())),
    }
}

/// The host a URL names, without user information, for messages.
pub(super) fn authority_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority.rsplit_once('@').map_or(authority, |(_, host)| host).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_to_a_token_service_over_https_or_to_a_host_the_user_trusts_with_plain_http() {
        let insecure = ["registry.lan:5000".to_string(), "auth.lan".to_string()];
        let allowed = |registry: &str, realm: &str| credentials_may_go_to(registry, realm, &insecure);
        // HTTPS anywhere: the certificate names the host.
        assert!(allowed("127.0.0.1:5000", "https://auth.test/token").is_ok());
        assert!(allowed("registry.test", "HTTPS://auth.test:8443/token?x=1").is_ok());
        // Plain HTTP to loopback, to a host named insecure (any port when named without one),
        // and to the host of a registry named insecure.
        assert!(allowed("registry.test", "http://127.0.0.1:5001/token").is_ok());
        assert!(allowed("registry.test", "http://[::1]:5001/token").is_ok());
        assert!(allowed("registry.test", "http://localhost/token").is_ok());
        assert!(allowed("registry.test", "http://auth.lan:9000/token").is_ok());
        assert!(allowed("registry.lan:5000", "http://registry.lan:5001/token").is_ok());
        // Nothing else over plain HTTP, whatever the registry is.
        for (registry, realm) in [
            ("127.0.0.1:5000", "http://192.0.2.1/token"),
            ("127.0.0.1:5000", "http://127.example.test/token"),
            ("127.0.0.1:5000", "http://user:pw@192.0.2.1/token"),
            ("registry.test", "http://registry.test/token"),
            ("registry.lan:5000", "http://other.lan/token"),
            ("127.0.0.1:5000", "ftp://auth.test/token"),
            ("127.0.0.1:5000", "auth.test/token"),
            ("127.0.0.1:5000", "http:///token"),
        ] {
            let refused = allowed(registry, realm);
            assert!(refused.is_err(), "{registry} {realm}");
            assert!(!refused.unwrap_err().to_string().contains("pw@"));
        }
        assert_eq!(authority_of("http://user:pw@192.0.2.1:8080/token"), "192.0.2.1:8080");
    }
}
