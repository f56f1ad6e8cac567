//! An error and its sources in one line, each said once.

/// `error`, then each source whose words it has not said yet: kube's transport errors
/// keep the OS error ("Connection refused (os error 111)") at the bottom of the chain,
/// while errors that already quote their source (a device error naming why a WLED
/// controller did not answer) are not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Layer {
        what: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(what: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            what,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn sources_are_said_once_and_new_words_are_kept() {
        let bottom = layer("Connection refused", None);
        let quoting = layer("did not answer: Connection refused", Some(bottom));
        let top = layer("WLED controller", Some(quoting));
        assert_eq!(
            error_chain(&top),
            "WLED controller: did not answer: Connection refused"
        );
    }
}
