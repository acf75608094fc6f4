"""AELP2 assets: Dagster assets that run a paid-social team's Meta ad budget.

Importing the package has no side effects; the Dagster definitions are built in
``aelp2_assets.definitions``.
"""
