"""Seed 003, "Job Event Type": a JOB event inside a feature's sequence, in Python; the feature runs, its JOB event
schedules the job with the piped input, and the job sends the reminder (a push and an email).

The seed shows the event alone. Around it, the product ``events-app`` declares what the seed assumes: the job
``send_notification`` (a NOTIFICATION), the notification it runs, whose channels are declared ``true`` so that
they take their fields from the input in the seed's shape (``push_notification: {title, body, data,
device_token}``, ``email: {to, subject, body}``), the env's push provider (a local HTTP server) and mail server
(a local SMTP server), and a feature ``event_reminder`` whose sequence holds the event. The event is the seed's
``IFeatureEvent``; as the seed calls JOB events autonomous, it is done once the job is scheduled: its ``retries``
are the job run's, and ``allow_fail`` covers scheduling it (docs/concepts/features.md).

    python examples/seed_003_job_events.py      # on $DUCTAPE_STORE (a fresh store), else a temporary file
"""

from __future__ import annotations

from ductape_jobs import Ductape, FeatureEventTypes, IFeatureEvent, JobEventTypes
from local_services import HttpRecorder, MailServer, store_url

# ## Sample Job Event (the seed's IFeatureEvent)
send_reminder_job = IFeatureEvent(
    type=FeatureEventTypes.JOB,  # Specifies the event as a job
    event="send_notification",  # Unique identifier for the job
    input={
        "push_notification": {
            "title": "Reminder Alert",  # Title of the push notification
            "body": "This is a reminder for your upcoming event.",  # Message content
            "data": {
                "eventId": "$Input{event_id}",  # Data piping: event ID fetched from a previous input
                "reminderType": "upcoming_event",  # Type of reminder being sent
            },
            "device_token": "$Input{device_token}",  # Device token piped from user input
        },
        "email": {
            "to": "$Input{email}",  # Piped recipient email from user input
            "subject": "Event Reminder",
            "body": "Hello! This is a reminder for your upcoming event on $Input{date}.",  # data piping: the date
        },
    },
    retries=3,  # Number of retry attempts in case of failure
    allow_fail=False,  # Failure of this job will impact the overall sequence
)

with HttpRecorder() as push, MailServer() as mail, Ductape(store_url()) as ductape:
    ductape.products.add(
        {
            "tag": "events-app",
            "envs": {
                "dev": {
                    "push": {"url": f"{push.url}/push"},
                    "smtp": {"host": "127.0.0.1", "port": mail.port, "sender": "Events <events@example.com>"},
                }
            },
            "notifications": {"send_notification": {"push": True, "email": True}},
            "features": {
                "event_reminder": {
                    "input": {"event_id": "string", "device_token": "string", "email": "string", "date": "string"},
                    "required": ["event_id", "device_token", "email", "date"],
                    "sequence": [{"sequence_tag": "remind", "events": [send_reminder_job]}],
                }
            },
        }
    )
    ductape.job.create(
        {
            "name": "Send notification",
            "tag": "send_notification",
            "event_type": JobEventTypes.NOTIFICATION,
            "event_tag": "send_notification",
        }
    )

    feature_run = ductape.feature.run(
        "event_reminder",
        env="dev",
        product_tag="events-app",
        input={"event_id": "ev_42", "device_token": "device-abc", "email": "ada@example.com", "date": "2026-05-01"},
    )
    event = feature_run.events[0]
    print(f"feature run: {feature_run.status}; event {event.event_tag} ({event.event_type}): {event.status}")
    print("job event output:", event.output)  # a JOB event is void: it pipes nothing forward

    ductape.drain()  # the job the event scheduled runs now
    run = ductape.job.runs(job_id=event.job_id)[0]
    print(f"job run {run.job_tag}: {run.phase}, retries allowed {run.max_retries}")
    sent = push.requests[0].json()
    print("push:", sent["title"], "|", sent["body"], "|", sent["data"], "|", sent["tokens"])
    message = mail.messages[0]
    print("email:", message["To"], "|", message["Subject"], "|", message.get_content().strip())
