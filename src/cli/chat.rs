//! `edgegemma chat`: an interactive conversation in the model's chat template
//! (`tokenizer.chat_template`, rendered by [`edgegemma::chat_template`]; the built-in Gemma
//! turn format when the file has none). The KV cache (or recurrent state) is kept across
//! turns: each turn feeds only the new text, which the template gives
//! ([`ChatTemplate::continuation`]). `/reset` starts over, `/quit` (or end of input) leaves.

use super::common::{load_state, save_state, with_threads, ModelArgs};
use super::run::SamplingArgs;
use super::CliResult;
use clap::Args;
use edgegemma::chat_template::{ChatTemplate, Message};
use edgegemma::generate::{generate, StopReason};
use edgegemma::model::ModelError;
use edgegemma::sampler::Sampler;
use edgegemma::tokenizer::{StreamDecoder, Tokenizer};
use std::io::{BufRead, Write};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// System prompt (Gemma 3's template folds it into the first user turn)
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens per reply (-1 = until <end_of_turn>)
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_hyphen_values = true)]
    pub n_predict: i64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Restore a conversation state saved with --save-state before the prompt
    #[arg(long = "load-state")]
    pub load_state: Option<PathBuf>,
    /// Save the conversation state (every token fed so far) at the end
    #[arg(long = "save-state")]
    pub save_state: Option<PathBuf>,
}

pub fn run(args: &ChatArgs) -> CliResult {
    with_threads(args.model.threads, || run_in_pool(args))
}

fn run_in_pool(args: &ChatArgs) -> CliResult {
    let sampler_cfg = args.sampling.config()?;
    let (mut model, file) = super::common::load_model(&args.model)?;
    let tok = Tokenizer::from_gguf_file(&file)?;
    let template = ChatTemplate::from_gguf(&file, &tok)
        .map_err(|e| format!("{}: {e}", args.model.model.display()))?;
    // Checked before the first turn, so a template that cannot be continued fails up front.
    let model_turn_end = template.model_turn_end()?;
    template.continuation(&Message::new("user", "x"))?;
    let system = args
        .system
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let mut sampler = Sampler::new(sampler_cfg);
    let n_predict = usize::try_from(args.n_predict).ok();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let interactive = std::io::IsTerminal::is_terminal(&stdin);
    // Text owed to the context before the next user turn (the end of the last model turn).
    let mut pending = String::new();
    let mut first_turn = true;
    if let Some(path) = &args.load_state {
        load_state(model.as_mut(), path)?;
        first_turn = model.pos() == 0;
    }
    eprintln!("edgegemma chat: /reset to start over, /quit or end of input to leave");
    loop {
        if interactive {
            write!(stdout, "> ").and_then(|()| stdout.flush()).ok();
        }
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let msg = line.trim();
        match msg {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                model.reset();
                sampler.reset();
                pending.clear();
                first_turn = true;
                eprintln!("(conversation reset)");
                continue;
            }
            _ => {}
        }
        let user = Message::new("user", msg);
        let rendered = if first_turn {
            let mut msgs: Vec<Message> = system
                .map(|sys| Message::new("system", sys))
                .into_iter()
                .collect();
            msgs.push(user);
            template.render(&msgs, true)
        } else {
            template.continuation(&user)
        };
        let rendered = match rendered {
            Ok(r) => r,
            Err(e) => {
                eprintln!("edgegemma: {e}");
                continue;
            }
        };
        let turn = format!("{pending}{rendered}");
        // A template writes the BOS itself (`{{ bos_token }}`); one that does not gets it added.
        let ids = if first_turn {
            edgegemma::chat_template::tokenize_rendered(&tok, &turn)
        } else {
            tok.encode(&turn, false, true)
        };
        if model.pos() + ids.len() >= model.n_ctx() {
            eprintln!(
                "edgegemma: this turn would overflow the context ({} of {} positions used); /reset to start over",
                model.pos(),
                model.n_ctx()
            );
            // Nothing was fed: whatever was owed before this turn is still owed.
            continue;
        }
        pending.clear();
        first_turn = false;
        let mut dec = StreamDecoder::new(false);
        let (timings, stop) = generate(
            model.as_mut(),
            &tok,
            &mut sampler,
            &ids,
            n_predict,
            &mut |id| {
                let piece = dec.push(&tok, id).map_err(|e| ModelError(e.to_string()))?;
                stdout
                    .write_all(piece.as_bytes())
                    .and_then(|()| stdout.flush())
                    .map_err(|e| ModelError(format!("cannot write to stdout: {e}")))
            },
        )?;
        let tail = dec.finish().to_string();
        writeln!(stdout, "{tail}")?;
        // The end-of-turn token was sampled but not fed; it opens the next turn's text.
        pending.push_str(&model_turn_end);
        if stop == StopReason::ContextFull {
            eprintln!("edgegemma: context full; /reset to start over");
        }
        eprintln!(
            "({} tok, {:.1} t/s; context {}/{})",
            timings.gen_tokens,
            timings.gen_tps(),
            model.pos(),
            model.n_ctx()
        );
    }
    if let Some(path) = &args.save_state {
        // Close the last model turn so the saved state ends on a turn boundary.
        if !pending.is_empty() {
            let ids = tok.encode(&pending, false, true);
            if model.pos() + ids.len() <= model.n_ctx() {
                model.eval(&ids)?;
            }
        }
        save_state(model.as_ref(), path)?;
    }
    Ok(())
}
