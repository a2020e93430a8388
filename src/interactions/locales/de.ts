// German texts of the pages (same keys as en.ts, which explains the {name} values and the markup rules).
import type { Messages } from './en.ts';

const RETRY_OR_SUPPORT =
  'Kehren Sie zur Anwendung zurück und versuchen Sie es erneut. Wenn das Problem bleibt, wenden Sie sich an den Support der Anwendung und nennen Sie die Angaben unten.';

export const de: Messages = {
  lang: 'de',
  login: {
    title: 'Anmelden',
    heading: 'Anmelden',
    continueTo: 'weiter zu <strong>{client}</strong>',
    someApplication: 'der Anwendung',
    userLabel: 'VAL-Benutzerkennung',
    passwordLabel: 'Passwort',
    submit: 'Anmelden',
    failed: 'Die VAL-Benutzerkennung oder das Passwort ist falsch.',
    throttled: {
      one: 'Zu viele fehlgeschlagene Anmeldeversuche. Versuchen Sie es in {seconds} Sekunde erneut.',
      other: 'Zu viele fehlgeschlagene Anmeldeversuche. Versuchen Sie es in {seconds} Sekunden erneut.',
    },
    busy: 'Dieses Anmeldeformular wird bereits gesendet. Bitte warten Sie einen Moment und versuchen Sie es dann erneut.',
    formExpired: 'Ihr Anmeldeformular ist abgelaufen. Bitte versuchen Sie es erneut.',
    noLongerValid: 'Diese Anmeldeanfrage ist nicht mehr gültig. Bitte versuchen Sie es erneut.',
  },
  logout: {
    title: 'Abmelden',
    heading: 'Abmelden',
    question: 'Möchten Sie sich von {site} abmelden?',
    confirm: 'Ja, abmelden',
    cancel: 'Nein, angemeldet bleiben',
  },
  loggedOut: {
    title: 'Abgemeldet',
    heading: 'Abgemeldet',
    everywhere: 'Sie haben sich von {site} abgemeldet.',
    clientOnly: 'Sie haben sich von {client} abgemeldet. Bei {site} sind Sie weiterhin angemeldet.',
    close: 'Sie können dieses Fenster jetzt schließen.',
  },
  home: 'Zur Startseite von {site}',
  error: {
    detailsLabel: 'Angaben für den Support',
    reference: 'Referenz',
    pages: {
      invalid_client: {
        heading: 'Unbekannte Anwendung',
        what: 'Die Anwendung, die Sie hierher geschickt hat, ist bei {site} nicht registriert.',
        todo: RETRY_OR_SUPPORT,
      },
      invalid_redirect_uri: {
        heading: 'Anmeldung abgebrochen',
        what: 'Die Anwendung, die Sie hierher geschickt hat, möchte die Antwort an eine Adresse erhalten, die bei {site} nicht registriert ist. Zu Ihrer Sicherheit wird die Anmeldung hier beendet.',
        todo: RETRY_OR_SUPPORT,
      },
      unauthorized_client: {
        heading: 'Anwendung nicht zugelassen',
        what: 'Die Anwendung, die Sie hierher geschickt hat, darf {site} zurzeit nicht nutzen.',
        todo: 'Wenden Sie sich an den Support der Anwendung und nennen Sie die Angaben unten.',
      },
      invalid_request: {
        heading: 'Ungültige Anfrage',
        what: 'Die Anwendung, die Sie hierher geschickt hat, hat eine Anfrage gestellt, die {site} nicht annehmen kann.',
        todo: RETRY_OR_SUPPORT,
      },
      login_expired: {
        heading: 'Anmeldung abgelaufen',
        what: 'Diese Anmeldeanfrage ist abgelaufen oder wurde in einem anderen Browser geöffnet.',
        todo: 'Kehren Sie zur Anwendung zurück und melden Sie sich erneut an.',
      },
      request_too_large: {
        heading: 'Anfrage zu groß',
        what: 'Die an {site} gesendete Anfrage war zu groß.',
        todo: 'Gehen Sie zurück und versuchen Sie es mit kürzeren Eingaben erneut.',
      },
      temporarily_unavailable: {
        heading: 'Vorübergehend nicht verfügbar',
        what: '{site} ist vorübergehend nicht verfügbar.',
        todo: 'Bitte versuchen Sie es in einigen Sekunden erneut.',
      },
      server_error: {
        heading: 'Etwas ist schiefgelaufen',
        what: 'Bei {site} ist ein unerwarteter Fehler aufgetreten.',
        todo: 'Bitte versuchen Sie es gleich noch einmal. Wenn das Problem bleibt, wenden Sie sich an den Betreiber von {site} und nennen Sie die Angaben unten.',
      },
      other: {
        heading: 'Etwas ist schiefgelaufen',
        what: '{site} konnte diese Anfrage nicht ausführen.',
        todo: RETRY_OR_SUPPORT,
      },
    },
  },
};
