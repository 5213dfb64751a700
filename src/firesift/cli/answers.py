"""Answer commands: ask, chat, check, thread, eval, train-stance."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firesift.cli._common import (
    Add,
    as_of_opt,
    db_opt,
    err,
    open_db,
    out,
    parse_as_of,
    settings_of,
)
from firesift.config import Settings
from firesift.errors import FiresiftError

if TYPE_CHECKING:
    from firesift.answer.engine import AnswerEngine
    from firesift.database import Database


def _engine(db: Database, settings: Settings, llm_model: str | None) -> tuple[AnswerEngine, str]:
    """The engine, and the composer to use: ``llm`` when ``--llm`` was given."""
    from firesift.answer.engine import AnswerEngine

    encoder = settings.claims_encoder
    if llm_model is None:
        return AnswerEngine(db, claims_encoder=encoder), "extractive"
    from firesift import llm
    from firesift.answer.llm_composer import LLMComposer

    if llm_model:
        settings = replace(settings, llm_model=llm_model)
    composers: dict[str, Any] = {"llm": LLMComposer(llm.from_settings(settings))}
    return AnswerEngine(db, composers=composers, claims_encoder=encoder), "llm"


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def cmd_ask(args: argparse.Namespace) -> int:
    from firesift.answer.model import Message
    from firesift.answer.render import render_answer

    settings = settings_of(args)
    as_of = parse_as_of(args.as_of)
    db = open_db(settings)
    try:
        engine, composer = _engine(db, settings, args.llm)
        answer = engine.answer([Message("user", args.question)], as_of=as_of, composer=composer)
    finally:
        db.close()
    if args.json:
        out(answer.to_dict())
    else:
        _console().print(render_answer(answer))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from firesift.answer.model import Message
    from firesift.answer.render import render_answer

    settings = settings_of(args)
    as_of = parse_as_of(args.as_of)
    console = _console()
    db = open_db(settings)
    try:
        engine, composer = _engine(db, settings, args.llm)
        history: list[Message] = []
        err("Ask about the stream; follow-up questions keep the conversation. Ctrl-D to quit.")
        while True:
            try:
                question = input("you> ").strip()
            except EOFError:
                err("")
                return 0
            if not question:
                continue
            history.append(Message("user", question))
            try:
                answer = engine.answer(history, as_of=as_of, composer=composer)
            except FiresiftError as e:
                history.pop()
                err(f"firesift: {e}")
                continue
            history.append(Message("assistant", answer.text))
            console.print(render_answer(answer))
            console.print()
    finally:
        db.close()


def cmd_check(args: argparse.Namespace) -> int:
    from firesift.answer.engine import AnswerEngine
    from firesift.answer.render import render_verdict

    as_of = parse_as_of(args.as_of)
    db = open_db(settings_of(args))
    try:
        verdict = AnswerEngine(db).check(args.claim, as_of=as_of)
    finally:
        db.close()
    if args.json:
        out(verdict.to_dict())
    else:
        _console().print(render_verdict(verdict))
    return 0


def cmd_thread(args: argparse.Namespace) -> int:
    from firesift.answer.thread import thread
    from firesift.cli._render import thread_view

    as_of = parse_as_of(args.as_of)
    db = open_db(settings_of(args))
    try:
        result = thread(db, args.key, as_of=as_of)
    finally:
        db.close()
    if args.json:
        out(result.to_dict())
    else:
        _console().print(thread_view(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.features != "shipped" and args.what != "stance":
        raise FiresiftError(f"--features {args.features} applies to `firesift eval stance` only")
    if args.what == "trends":
        from firesift.evaluation import trends_eval
        from firesift.recorded import DATA

        data = args.data or DATA
        if not (data / "crisislext26_dev").is_dir():
            raise FiresiftError(f"no CrisisLexT26 data under {data}: pass --data DIR")
        result = trends_eval.run(data)
    elif args.what == "stance":
        from firesift.evaluation import stance_eval
        from firesift.recorded import DATA

        result = stance_eval.run(args.data or DATA / "rumoureval2017", features=args.features)
    elif args.what == "happening":
        from firesift.evaluation import happening_eval
        from firesift.recorded import DATA

        data = args.data or DATA
        if not (data / "crisislext26_dev").is_dir():
            raise FiresiftError(f"no CrisisLexT26 data under {data}: pass --data DIR")
        result = happening_eval.run(data)
    elif args.what == "claims":
        from firesift.evaluation import claims_eval

        result = claims_eval.run(args.data)
    elif args.what == "rerank":
        from firesift.evaluation import rerank_eval

        result = rerank_eval.run(args.data)
    elif args.what == "veracity":
        from firesift.evaluation import veracity_eval
        from firesift.recorded import DATA

        data = args.data or DATA
        if not (data / "pheme9").is_dir():
            raise FiresiftError(f"no PHEME 9 data under {data}: pass --data DIR")
        result = veracity_eval.run(data)
    else:
        from firesift.evaluation import answers_eval

        result = answers_eval.run(args.data)
    if args.json:
        out(result)
        return 0
    from firesift.cli._render import eval_view

    _console().print(eval_view(args.what, result))
    if "minilm" in result:
        from firesift.evaluation.stance_embed_eval import view

        _console().print(view(result["minilm"]))
    return 0


def cmd_train_stance(args: argparse.Namespace) -> int:
    from firesift.answer.train_stance import train
    from firesift.recorded import DATA

    data = args.data or DATA / "rumoureval2017"
    if not (data / "posts.jsonl").is_file():
        raise FiresiftError(
            f"no RumourEval 2017 data at {data}: pass --data DIR (the folder with posts.jsonl)"
        )
    out_path = args.out or Path(__file__).parents[1] / "answer" / "stance_model.npz"
    err(f"training on {data} -> {out_path}")
    report = train(data, out_path, seed=args.seed).to_dict()
    if args.json:
        out(report)
    else:
        for key in ("accuracy", "macro_f1", "majority_accuracy", "majority_macro_f1", "n_dev"):
            if key in report:
                print(f"dev {key:>18}: {report[key]}")
    return 0


def register(add: Add) -> None:
    def llm_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--llm",
            nargs="?",
            const="",
            metavar="MODEL",
            help="compose with the configured OpenAI-compatible LLM (optionally naming the model)",
        )

    p = add("ask", cmd_ask, "Ask a question; get an answer whose every claim cites posts.")
    p.add_argument("question")
    as_of_opt(p, "now (or the newest post of an archive)")
    llm_opt(p)
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add("chat", cmd_chat, "An interactive session with follow-up questions.")
    as_of_opt(p, "now")
    llm_opt(p)
    db_opt(p)

    p = add(
        "check",
        cmd_check,
        "Check a claim: supported, disputed, unverified or insufficient (repeating it is not"
        " evidence for it).",
    )
    p.add_argument("claim")
    as_of_opt(p, "now")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add(
        "thread",
        cmd_thread,
        "Show a post's conversation with every reply's stance (support, deny, query, comment)"
        " towards its source post, and the tally.",
    )
    p.add_argument("key", metavar="SOURCE:ID", help="the post, e.g. x:524925050739490816")
    as_of_opt(p, "everything stored")
    db_opt(p)
    p.add_argument("--json", action="store_true")

    p = add(
        "eval",
        cmd_eval,
        "Evaluate trends, answers, claims, stance, veracity or real-time ranking on real"
        " recorded data.",
    )
    p.add_argument(
        "what", choices=["trends", "answers", "stance", "happening", "claims", "veracity", "rerank"]
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="trends, happening: the folder holding crisislext26_dev/ (default: the "
        "repository's data/); "
        "answers, claims, rerank: a corpus file or data directory (default: the shipped demo "
        "corpus); "
        "stance: the RumourEval 2017 folder (default: data/rumoureval2017); "
        "veracity: the folder holding pheme9/ and rumoureval2017/ (default: data/)",
    )
    p.add_argument("--json", action="store_true", help="every figure, per event or question")
    p.add_argument(
        "--features",
        choices=["shipped", "minilm"],
        default="shipped",
        help="stance only: minilm also trains a classifier on all-MiniLM-L6-v2 embeddings of"
        " reply and target and scores it next to the shipped model (a few minutes)",
    )

    p = add("train-stance", cmd_train_stance, "Retrain the shipped reply-stance model.")
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="RumourEval 2017 folder (default: the repository's data/rumoureval2017)",
    )
    p.add_argument("--out", type=Path, default=None, help="model file (default: the shipped one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
