"""Human-facing output: text tables, plots and the HTML report."""
