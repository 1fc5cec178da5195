"""Start the app's server: ``python -m pages.shared.serve run streamlit_app.py [streamlit's options]``.

What ``python -m streamlit`` does (the same arguments), after importing what the workers use and forking their fork
server from this process (:func:`aelab.jobs.fork_server_here`), before Streamlit starts a thread: the server, the
fork server and the workers then share one copy of torch's, scikit-learn's and the trainer's memory, and the first
visitor's Start finds the workers' imports done. ``make run``, ``make test``'s browser tests, the Dockerfile and the
benchmarks start the server this way; plain ``streamlit run`` still works, with a fork server of its own.
"""
import sys


def main() -> None:
    if sys.argv[1:2] == ["run"]:   # not for `--help`, `version`, `config show`
        from aelab.jobs import fork_server_here

        print("AE Lab: importing torch and scikit-learn once for the server and its workers...", file=sys.stderr,
              flush=True)
        fork_server_here()
    from streamlit.web import cli

    sys.exit(cli.main(prog_name="streamlit"))


if __name__ == "__main__":
    main()
