"""Outgoing e-mail: SMTP through aiosmtplib, or .eml files in the data dir (development)."""

from garrison.mail.mailer import FileMailer, Mailer, MailError, NullMailer, SmtpMailer, open_mailer

__all__ = ["FileMailer", "MailError", "Mailer", "NullMailer", "SmtpMailer", "open_mailer"]
