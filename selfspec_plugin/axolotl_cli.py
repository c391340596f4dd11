"""`axolotl selfspec ...`: Axolotl's `axolotl.cli_commands` entry point, forwarding to the selfspec CLI."""

import sys

import click


@click.command(
    "selfspec",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    short_help="self-specialization data generation (selfspec)",
)
@click.pass_context
def selfspec(ctx: click.Context) -> None:
    """Run a selfspec subcommand, e.g. `axolotl selfspec generate recipes/biomed.yml`."""
    from .cli import main

    sys.exit(main(list(ctx.args)))
