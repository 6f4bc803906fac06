"""The clock: when the CRM sync, the target evaluation and each digest subscription run, and
the guarantee that each (job, fire time) runs once — across restarts (APScheduler's persistent
SQLAlchemy job store, misfire grace time) and across processes (a claim row per fire time).

``plan`` says what runs when (cron triggers in each subscription's time zone, weekdays,
holidays); ``claims`` makes a run exclusive; ``runner`` runs due jobs (``kpibot run-due``);
``clock`` drives the runner from APScheduler (``kpibot clock``); ``jobs`` is what each job does.
"""
