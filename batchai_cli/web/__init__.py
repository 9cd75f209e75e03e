"""`batchai portal`: workspaces, jobs, logs and output files in a browser, over the same services
the CLI calls (a second face, like cli/). Starlette, uvicorn and Jinja2 come from the `portal` extra
and are imported only when the portal runs."""
